// What the browser tests run by scripts/e2e.sh share (viewer.mjs: local accounts; oidc.mjs:
// OpenID providers): the run's description, Chromium started against the gateway, the sign-in
// form, and the checks that Orthanc Explorer and the Web Viewer work through the gateway, so
// that every way of signing in is judged by the same checks.

import { X509Certificate, createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { check, eq } from './checks.mjs';
import { CHROMIUM, chromiumArgs } from './chromium.mjs';
import { totpNow } from './totp.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
/** The folder for screenshots (VIGIE_E2E_SCREENSHOTS, default docs/), or "off". */
export const SHOTS = process.env.VIGIE_E2E_SCREENSHOTS || path.join(ROOT, 'docs');
const LAUNCH_TIMEOUT_MS = 60_000;
const RENDER_TIMEOUT_MS = 30_000;
const VIEWPORT = { width: 1280, height: 800 };

/** A comment line of the test's output. */
export const note = (text) => console.log(`# ${text}`);

/** `s` on one line, cut at `n` characters. */
export const short = (s, n = 200) => {
  const t = String(s ?? '').replace(/\s+/g, ' ');
  return t.length > n ? `${t.slice(0, n)}…` : t;
};

// ---- the run's description (written by scripts/e2e.sh) --------------------------------------

/** VIGIE_E2E_RUN's JSON, with the sample manifest and Orthanc's identifiers of each file. */
export function loadRun() {
  const file = process.env.VIGIE_E2E_RUN;
  if (!file || !existsSync(file)) {
    throw new Error('VIGIE_E2E_RUN is not set or missing: run this test through scripts/e2e.sh, which starts Orthanc and Vigie first');
  }
  const run = JSON.parse(readFileSync(file, 'utf8'));
  const manifest = JSON.parse(readFileSync(path.join(run.samples, 'manifest.json'), 'utf8'));
  // Orthanc's answer to each upload (POST /instances): its identifiers for the file's
  // instance, series, study and patient.
  for (const m of manifest) {
    const up = JSON.parse(readFileSync(path.join(run.samples, `${m.file}.upload.json`), 'utf8'));
    Object.assign(m, { instance: up.ID, series: up.ParentSeries, study: up.ParentStudy, patient: up.ParentPatient });
  }
  run.manifest = manifest;
  run.extra = JSON.parse(readFileSync(path.join(run.samples, 'extra', 'manifest.json'), 'utf8'));
  run.orthancPassword = readFileSync(run.orthanc.passwordFile, 'utf8').trim();
  run.gateway.ca = readFileSync(run.gateway.caFile);
  run.origin = `https://${run.gateway.host}:${run.gateway.port}`;
  return run;
}

/** What the samples hold: the synthetic series, its first slice, the patients' names, the
 *  study UIDs, and the Web Viewer's URL for the synthetic series. */
export function samples(run) {
  const synth = run.manifest.filter((m) => m.synthetic);
  const first = synth[0];
  return {
    synth,
    first,
    studies: [...new Set(run.manifest.map((m) => m.studyUid))],
    patients: [...new Map(run.manifest.map((m) => [m.patientId, m.patientName])).values()],
    viewerPath: `/web-viewer/app/viewer.html?series=${first.series}`,
  };
}

// ---- Orthanc --------------------------------------------------------------------------------

/** A request straight to Orthanc's own port (bypassing the gateway). */
export function orthancRequest(run, method, target, { auth = true, body } = {}) {
  const headers = {};
  if (auth) headers.authorization = `Basic ${Buffer.from(`${run.orthanc.user}:${run.orthancPassword}`).toString('base64')}`;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: run.orthanc.port, method, path: target, headers, agent: false, timeout: 15_000 },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from Orthanc within 15 s for ${method} ${target}`)));
    req.on('error', reject);
    req.end(body);
  });
}

// ---- Chromium -------------------------------------------------------------------------------

/** Debian's Chromium with a fresh profile in `profile`, trusting the gateway's own key (its
 *  SPKI pin, so no certificate error is ignored), the public name resolved to loopback. */
export async function launch(run, profile, locale = 'en-GB') {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM=/path/to/chromium)`);
  const spki = createHash('sha256')
    .update(new X509Certificate(readFileSync(run.gateway.certFile)).publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');
  const t0 = Date.now();
  const context = await chromium
    .launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: chromiumArgs([
        `--host-resolver-rules=MAP ${run.gateway.host} 127.0.0.1`,
        `--ignore-certificate-errors-spki-list=${spki}`,
      ]),
      locale,
      viewport: VIEWPORT,
      timeout: LAUNCH_TIMEOUT_MS,
    })
    .catch((e) => {
      throw new Error(
        `Chromium (${CHROMIUM}) did not start within ${LAUNCH_TIMEOUT_MS / 1000} s: ${short(e.message, 400)}. ` +
          `Check it alone: ${CHROMIUM} --headless --no-sandbox --disable-gpu --dump-dom about:blank; on a busy machine, run again.`,
      );
    });
  note(`Chromium ${context.browser()?.version() ?? ''} started in ${((Date.now() - t0) / 1000).toFixed(1)} s (${locale})`);
  context.setDefaultTimeout(20_000);
  context.setDefaultNavigationTimeout(30_000);
  if (process.env.VIGIE_E2E_URLS) {
    context.on('request', (r) => {
      const u = new URL(r.url());
      if (u.origin === run.origin) appendFileSync(process.env.VIGIE_E2E_URLS, `${r.method()} ${u.pathname}${u.search} browser\n`);
    });
  }
  return context;
}

// ---- page helpers ---------------------------------------------------------------------------

/** fetch() inside the page: the browser's own request, with its cookies and Sec-Fetch headers.
 *  A binary request body goes in `bodyBase64`. The answer's body comes back as a latin1 string
 *  (bytes preserved). Redirects are not followed. */
export function pageFetch(page, url, init = {}) {
  return page.evaluate(
    async ([url, { bodyBase64, ...init }]) => {
      if (bodyBase64) init.body = Uint8Array.from(atob(bodyBase64), (c) => c.charCodeAt(0));
      const r = await fetch(url, { credentials: 'same-origin', redirect: 'manual', ...init });
      const bytes = new Uint8Array(await r.arrayBuffer());
      let body = '';
      for (let i = 0; i < bytes.length; i += 0x8000) body += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return { status: r.status, type: r.type, contentType: r.headers.get('content-type') ?? '', body };
    },
    [url, init],
  );
}

/** Fills the sign-in form of the current page and submits it; resolves with the POST's answer
 *  once the browser has left the sign-in page. */
export async function signIn(page, account) {
  await page.fill('#username', account.username);
  await page.fill('#password', account.password);
  await page.fill('#totp', totpNow(account.totp));
  const [res] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/_vigie/login' && r.request().method() === 'POST'),
    page.click('form button[type="submit"]'),
  ]);
  if (res.status() === 303) await page.waitForURL((u) => u.pathname !== '/_vigie/login');
  return res;
}

/** Records a page's failed requests (network errors and answers >= 400), minus favicon.ico. */
export function watchFailures(page) {
  const bad = [];
  const onResponse = (r) => {
    if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) bad.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
  };
  const onFailed = (r) => {
    if (!r.url().endsWith('/favicon.ico')) bad.push(`${r.failure()?.errorText} ${r.method()} ${r.url()}`);
  };
  page.on('response', onResponse);
  page.on('requestfailed', onFailed);
  return {
    bad,
    stop() {
      page.off('response', onResponse);
      page.off('requestfailed', onFailed);
    },
  };
}

/** Reads the Web Viewer's cornerstone canvas: size, lit pixels and distinct colours. */
export function canvasStats(page) {
  return page.evaluate(() => {
    const c = document.querySelector('#dicomImage canvas');
    if (!c || !c.width || !c.height) return null;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    const colours = new Set();
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] + d[i + 1] + d[i + 2] > 48) lit++;
      colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    }
    return { width: c.width, height: c.height, total: d.length / 4, lit, colours: colours.size };
  });
}

/** The canvas shows an image, not a blank or a message: enough lit pixels, enough shades. */
export const renderedEnough = (s) => !!s && s.lit >= s.total * 0.02 && s.colours >= 32;

function screenshot(page, name) {
  if (SHOTS === 'off' || !name) return Promise.resolve();
  mkdirSync(SHOTS, { recursive: true });
  note(`screenshot ${path.join(SHOTS, name)}`);
  return page.screenshot({ path: path.join(SHOTS, name) });
}

// ---- the viewers, through the gateway -------------------------------------------------------

/** Orthanc Explorer lists the patients (default: every loaded one) and none of its requests
 *  fails; checks named `tag: ...`. The page must not be on the Explorer already (a change of
 *  hash alone reloads nothing). */
export async function explorerWorks(page, run, tag, { shot, patients = samples(run).patients } = {}) {
  const watch = watchFailures(page);
  await page.goto(`${run.origin}/app/explorer.html#find-patients`);
  let listed = '';
  try {
    await page.waitForFunction((n) => document.querySelectorAll('#all-patients li').length >= n, patients.length, { timeout: 20_000 });
    listed = await page.textContent('#all-patients');
  } catch (e) {
    listed = (await page.textContent('body').catch(() => '')) ?? '';
  }
  const norm = (s) => s.replace(/\^/g, ' ').replace(/\s+/g, ' ').toLowerCase();
  for (const name of patients) {
    check(`${tag}: Orthanc Explorer lists the patient "${name}"`, norm(listed).includes(norm(name)), short(listed, 300));
  }
  await page.waitForTimeout(300);
  watch.stop();
  check(`${tag}: every Explorer request succeeded through the gateway`, watch.bad.length === 0, watch.bad.join(', '));
  await screenshot(page, shot);
}

/** The Web Viewer opens the synthetic CT series, draws it (canvas pixels read back), and
 *  loads every slice when scrolled with the mouse wheel, as a doctor does; checks named
 *  `tag: ...`. */
export async function webViewerWorks(page, run, tag, { shot } = {}) {
  const { synth, first, viewerPath } = samples(run);
  const slicesServed = new Set();
  const onSlice = (r) => {
    const p = new URL(r.url()).pathname;
    if (p.startsWith('/web-viewer/instances/') && r.status() === 200) slicesServed.add(p);
  };
  page.on('response', onSlice);
  const watch = watchFailures(page);
  const seriesAnswer = page.waitForResponse((r) => new URL(r.url()).pathname === `/web-viewer/series/${first.series}`, { timeout: 30_000 }).catch(() => null);
  const imageAnswer = page.waitForResponse((r) => new URL(r.url()).pathname.startsWith('/web-viewer/instances/'), { timeout: 30_000 }).catch(() => null);
  const res = await page.goto(run.origin + viewerPath);
  eq(`${tag}: the viewer page loads (200)`, res?.status(), 200);
  const sres = await seriesAnswer;
  let slices = [];
  try {
    const walk = (v) => (Array.isArray(v) ? v.flatMap(walk) : v && typeof v === 'object' ? Object.values(v).flatMap(walk) : [v]);
    slices = walk(await sres.json()).filter((s) => typeof s === 'string' && /^[0-9a-f-]+_\d+$/.test(s));
  } catch {}
  check(`${tag}: /web-viewer/series/<id> lists the ${synth.length} slices`, sres?.status() === 200 && slices.length === synth.length,
    `status ${sres?.status()}, ${slices.length} slices`);
  const ires = await imageAnswer;
  check(`${tag}: the first slice (/web-viewer/instances/...) is served`, ires?.status() === 200, `status ${ires?.status()}`);
  let stats = null;
  const until = Date.now() + RENDER_TIMEOUT_MS;
  while (Date.now() < until) {
    stats = await canvasStats(page).catch(() => null);
    if (renderedEnough(stats)) break;
    await page.waitForTimeout(250);
  }
  check(
    `${tag}: the viewer draws a non-blank image (canvas pixels read back)`,
    renderedEnough(stats),
    stats ? `${stats.width}x${stats.height}, ${stats.lit} lit of ${stats.total}, ${stats.colours} colours` : 'no #dicomImage canvas',
  );
  if (stats) note(`canvas ${stats.width}x${stats.height}: ${((100 * stats.lit) / stats.total).toFixed(1)} % lit, ${stats.colours} colours`);
  await page.waitForTimeout(500);
  watch.stop();
  check(`${tag}: every Web Viewer request succeeded through the gateway`, watch.bad.length === 0, watch.bad.join(', '));
  await screenshot(page, shot);
  // Scroll through the stack with the mouse wheel, as a doctor does: one synchronous XHR per slice.
  const box = await page.locator('#dicomImage').boundingBox();
  if (box) {
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    for (const dy of [120, -120]) {
      for (let i = 0; i < synth.length + 2 && slicesServed.size < synth.length; i++) {
        await page.mouse.wheel(0, dy);
        await page.waitForTimeout(40);
      }
    }
    const until2 = Date.now() + 10_000;
    while (slicesServed.size < synth.length && Date.now() < until2) await page.waitForTimeout(200);
  }
  page.off('response', onSlice);
  eq(`${tag}: scrolling with the mouse wheel loads every slice (${synth.length} /web-viewer/instances/... answers)`, slicesServed.size, synth.length);
  const after = await canvasStats(page).catch(() => null);
  check(`${tag}: ... and the image is still drawn after scrolling`, renderedEnough(after), JSON.stringify(after));
}
