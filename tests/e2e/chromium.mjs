// How the browser tests start Debian's Chromium (playwright-core cannot download browsers
// here): headless, no sandbox (containers, root in CI), nothing that talks to Google, and a
// fresh profile per run (launchPersistentContext's folder).

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Chromium's command-line flags, plus `extra`. */
export function chromiumArgs(extra = []) {
  return [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-dev-shm-usage',
    ...extra,
  ];
}
