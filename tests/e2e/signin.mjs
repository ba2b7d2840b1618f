// Real-browser end-to-end test of Vigie's sign-in flow, with Debian's Chromium driven by
// playwright-core. It starts a node upstream that echoes X-Vigie-User, a real `vigie serve` in
// front of it (fresh certificates, password hash and state in a temporary folder), then:
//   a. an unauthenticated page load lands on the sign-in page (fields, labels, autocomplete,
//      CSP, no script, nothing from another origin); screenshots in French and English;
//   b. a wrong verification code is refused (401, message, still on the sign-in page);
//   c. the right credentials with the current TOTP code land on the page first asked for, which
//      the upstream served to dr.martin;
//   d. signing out lands on the signed-out notice; the page asks for sign-in again, and the old
//      session cookie is refused.
// One line per check (PASS/FAIL), then "N passed, N failed"; exit 1 on any failure.
//
// Environment: VIGIE_BIN (default ../../target/debug/vigie), CHROMIUM (default /usr/bin/chromium),
// VIGIE_E2E_SCREENSHOTS (folder for signin.png and signin-en.png, default docs/ of the repo;
// "off" for none), VIGIE_E2E_EXTRA_SHOTS (folder: also the failure, sign-out and signed-out
// pages), VIGIE_E2E_KEEP=1 (keep the temporary folder).

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { selfCheck, totpNow, wrongCode } from './totp.mjs';
import { anyFailed, check, deadline, eq, finish } from './checks.mjs';
import { CHROMIUM, chromiumArgs } from './chromium.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const VIGIE = path.resolve(process.env.VIGIE_BIN || path.join(HERE, '../../target/debug/vigie'));
const SHOTS = process.env.VIGIE_E2E_SCREENSHOTS || path.join(ROOT, 'docs');
const EXTRA_SHOTS = process.env.VIGIE_E2E_EXTRA_SHOTS || '';
const USER = 'dr.martin';
const PASSWORD = 'Radio-Thorax-2026';
// base32("12345678901234567890"): RFC 6238's SHA-1 test key.
const TOTP_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
const PAGE = '/some/page.html?x=1';
const DEADLINE_MS = 60_000;


// ---- helpers ------------------------------------------------------------------------------

const escapeHtml = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

function startUpstream() {
  const seen = [];
  const server = http.createServer((req, res) => {
    const user = req.headers['x-vigie-user'];
    seen.push({ method: req.method, url: req.url, user });
    const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Upstream</title></head>
<body><h1>Upstream page</h1>
<p>Path: <code id="path">${escapeHtml(req.url)}</code></p>
<p>Signed-in user: <strong id="user">${escapeHtml(user ?? '(none)')}</strong></p></body></html>\n`;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, seen, port: server.address().port }));
  });
}

/** Starts `vigie serve` and resolves with the bound HTTPS address once it logs "vigie listening". */
function startGateway(configFile) {
  const child = spawn(VIGIE, ['serve', '--config', configFile, '--log-format', 'json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs = [];
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('vigie did not log "vigie listening" within 20 s')), 20_000);
    const onLine = (line) => {
      if (!line.trim()) return;
      logs.push(line);
      if (!line.includes('vigie listening')) return;
      try {
        const rec = JSON.parse(line);
        const https = rec.https ?? rec.fields?.https;
        if (https) {
          clearTimeout(timer);
          resolve(https);
        }
      } catch {
        const m = line.match(/"https":"([^"]+)"/);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      }
    };
    for (const stream of [child.stdout, child.stderr]) {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          onLine(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
    }
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`vigie exited early (code ${code}, signal ${signal})`));
    });
  });
  return { child, logs, ready };
}

function stopGateway(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

// ---- the test -----------------------------------------------------------------------------

async function main() {
  if (!existsSync(VIGIE)) throw new Error(`no vigie binary at ${VIGIE} (cargo build, or set VIGIE_BIN)`);
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install chromium)`);

  // The TOTP helper answers RFC 6238 appendix B's value (T = 59 s -> 94287082, 6 digits: 287082).
  selfCheck();

  const tmp = mkdtempSync(path.join(tmpdir(), 'vigie-e2e-'));
  const res = live;
  res.tmp = tmp;
  try {
    await run(res);
  } finally {
    if (res.context) await res.context.close().catch(() => {});
    if (res.gateway) await stopGateway(res.gateway.child);
    if (res.upstream) await new Promise((r) => res.upstream.server.close(r)).catch(() => {});
    if (anyFailed() && res.gateway) {
      console.log('--- vigie log (last 30 lines) ---');
      for (const l of res.gateway.logs.slice(-30)) console.log(l);
    }
    if (process.env.VIGIE_E2E_KEEP === '1') console.log(`kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }
}

async function run(res) {
  const { tmp } = res;
  const certs = path.join(tmp, 'certs');
  mkdirSync(certs);
  execFileSync(VIGIE, ['dev-cert', '--out', certs, '--name', 'localhost'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const hash = execFileSync(VIGIE, ['hash-password'], { input: `${PASSWORD}\n`, stdio: ['pipe', 'pipe', 'pipe'] })
    .toString()
    .trim()
    .split('\n')
    .pop()
    .trim();
  if (!hash.startsWith('$argon2id$')) throw new Error(`vigie hash-password printed ${JSON.stringify(hash)}`);

  res.upstream = await startUpstream();
  const { seen } = res.upstream;
  const configFile = path.join(tmp, 'vigie.yaml');
  writeFileSync(
    configFile,
    `state_dir: ${JSON.stringify(path.join(tmp, 'state'))}
server_name: localhost
listen:
  https: "127.0.0.1:0"
tls:
  cert_file: ${JSON.stringify(path.join(certs, 'server.crt'))}
  key_file: ${JSON.stringify(path.join(certs, 'server.key'))}
upstream:
  url: "http://127.0.0.1:${res.upstream.port}"
auth:
  users:
    - username: ${USER}
      password_hash: ${JSON.stringify(hash)}
      totp_secret: ${TOTP_SECRET}
      roles: [doctor]
access:
  - path: /tools/execute-script
    roles: []
  - path: /tools/
    roles: [admin]
  - path: /
    roles: [doctor, admin]
`,
  );

  res.gateway = startGateway(configFile);
  const bound = await res.gateway.ready;
  const port = Number(bound.split(':').pop());
  const origin = `https://localhost:${port}`;
  console.log(`# vigie on ${origin}, upstream on 127.0.0.1:${res.upstream.port}, Chromium ${CHROMIUM}`);

  res.context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: chromiumArgs(),
    ignoreHTTPSErrors: true,
    locale: 'fr-FR',
    viewport: { width: 1280, height: 860 },
    timeout: 30_000,
  });
  const context = res.context;
  context.setDefaultTimeout(10_000);
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  const page = context.pages()[0] ?? (await context.newPage());
  const pathOf = () => new URL(page.url()).pathname;
  const upstreamHits = () => seen.filter((r) => r.url.startsWith('/some/'));

  // a. An unauthenticated navigation lands on the sign-in page.
  console.log('# a. sign-in page');
  const landing = await page.goto(origin + PAGE);
  const url = new URL(page.url());
  eq('a: lands on /_vigie/login', url.pathname, '/_vigie/login');
  eq('a: next carries the page asked for', url.searchParams.get('next'), PAGE);
  const hop = landing.request().redirectedFrom();
  const hopRes = hop && (await hop.response());
  eq('a: the gateway answers the page with 303', hopRes?.status(), 303);
  const location = hopRes?.headers().location ?? '';
  const loc = new URL(location, origin);
  check(
    'a: Location is /_vigie/login?next=<path, query percent-encoded>',
    loc.pathname === '/_vigie/login' && loc.searchParams.get('next') === PAGE && /^\/_vigie\/login\?next=\/[^?&]+$/.test(location),
    location,
  );
  eq('a: sign-in page status 200', landing.status(), 200);
  const csp = landing.headers()['content-security-policy'] ?? '';
  check('a: Content-Security-Policy header', /default-src 'none'/.test(csp) && !/script-src/.test(csp), csp || 'missing');
  eq('a: Cache-Control no-store', landing.headers()['cache-control'], 'no-store');
  eq('a: html lang is fr (Accept-Language fr-FR)', await page.getAttribute('html', 'lang'), 'fr');
  eq('a: heading "Connexion"', (await page.textContent('h1'))?.trim(), 'Connexion');
  eq('a: no <script> on the page', await page.locator('script').count(), 0);
  const form = page.locator('form[action="/_vigie/login"]');
  eq('a: one form posting to /_vigie/login', await form.count(), 1);
  eq('a: the form method is post', (await form.getAttribute('method'))?.toLowerCase(), 'post');
  for (const [id, autocomplete, type, label] of [
    ['username', 'username', 'text', 'Identifiant'],
    ['password', 'current-password', 'password', 'Mot de passe'],
    ['totp', 'one-time-code', 'text', 'Code de vérification'],
  ]) {
    const input = page.locator(`#${id}`);
    eq(`a: #${id} is present`, await input.count(), 1);
    eq(`a: #${id} autocomplete=${autocomplete}`, await input.getAttribute('autocomplete'), autocomplete);
    eq(`a: #${id} type=${type}`, await input.getAttribute('type'), type);
    eq(`a: label for #${id} reads "${label}"`, (await page.textContent(`label[for="${id}"]`))?.trim(), label);
    eq(`a: #${id} is reachable by its label`, await page.getByLabel(label, { exact: true }).getAttribute('id'), id);
  }
  eq('a: #totp inputmode=numeric', await page.getAttribute('#totp', 'inputmode'), 'numeric');
  eq('a: submit button "Se connecter"', (await page.textContent('form button[type="submit"]'))?.trim(), 'Se connecter');
  eq('a: the user name field has the focus', await page.evaluate(() => document.activeElement?.id), 'username');
  check('a: the stylesheet applied (not a browser default)', await page.evaluate(() => getComputedStyle(document.body).backgroundColor !== 'rgba(0, 0, 0, 0)'));
  if (SHOTS !== 'off') {
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, 'signin.png'), fullPage: true });
  }

  // English through the page's own language link (keeps next), and through Accept-Language.
  await Promise.all([page.waitForURL(/lang=en/), page.click('p.lang a')]);
  const enUrl = new URL(page.url());
  eq('a: the "English" link keeps next', enUrl.searchParams.get('next'), PAGE);
  eq('a: ?lang=en heading "Sign in"', (await page.textContent('h1'))?.trim(), 'Sign in');
  eq('a: ?lang=en label "User name"', (await page.textContent('label[for="username"]'))?.trim(), 'User name');
  if (SHOTS !== 'off') await page.screenshot({ path: path.join(SHOTS, 'signin-en.png'), fullPage: true });
  const enPage = await context.newPage();
  // Chromium's locale emulation (fr-FR) wins over setExtraHTTPHeaders for navigations; a route
  // rewrites the header on the wire instead.
  await enPage.route('**/*', (r) =>
    r.continue({ headers: { ...r.request().headers(), 'accept-language': 'en-GB,en;q=0.9' } }),
  );
  await enPage.goto(`${origin}/_vigie/login`);
  eq('a: Accept-Language en-GB gives English', (await enPage.textContent('h1'))?.trim(), 'Sign in');
  await enPage.close();
  await Promise.all([page.waitForURL(/lang=fr/), page.click('p.lang a')]);
  eq('a: the "Français" link comes back to French', (await page.textContent('h1'))?.trim(), 'Connexion');

  const foreign = requests.filter((u) => new URL(u).origin !== origin);
  check('a: no request to any other origin', foreign.length === 0, foreign.join(', '));
  eq('a: the upstream saw nothing before sign-in', upstreamHits().length, 0);

  // b. A wrong verification code.
  console.log('# b. wrong code');
  await page.fill('#username', USER);
  await page.fill('#password', PASSWORD);
  await page.fill('#totp', wrongCode(TOTP_SECRET));
  const [failRes] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${origin}/_vigie/login` && r.request().method() === 'POST'),
    page.click('form button[type="submit"]'),
  ]);
  await page.waitForLoadState();
  eq('b: refused with 401', failRes.status(), 401);
  eq('b: still on /_vigie/login', pathOf(), '/_vigie/login');
  const alert = page.locator('.notice.error[role="alert"]');
  check('b: "La connexion a échoué" is shown', (await alert.textContent().catch(() => ''))?.includes('La connexion a échoué'));
  eq('b: the user name is kept', await page.inputValue('#username'), USER);
  eq('b: the password is not echoed back', await page.inputValue('#password'), '');
  eq('b: the code is not echoed back', await page.inputValue('#totp'), '');
  eq('b: the password field has the focus', await page.evaluate(() => document.activeElement?.id), 'password');
  eq('b: next is kept in the form', await page.inputValue('input[name="next"]'), PAGE);
  check('b: no session cookie', !(await context.cookies(origin)).some((c) => c.name === '__Host-vigie'));
  eq('b: the upstream saw nothing', upstreamHits().length, 0);
  if (EXTRA_SHOTS) await page.screenshot({ path: path.join(EXTRA_SHOTS, 'signin-failed.png'), fullPage: true });

  // c. The right credentials.
  console.log('# c. sign in');
  await page.fill('#username', USER);
  await page.fill('#password', PASSWORD);
  await page.fill('#totp', totpNow(TOTP_SECRET));
  const [okRes] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${origin}/_vigie/login` && r.request().method() === 'POST'),
    page.click('form button[type="submit"]'),
  ]);
  await page.waitForURL((u) => u.pathname === '/some/page.html');
  eq('c: the sign-in answers 303', okRes.status(), 303);
  eq('c: 303 to the page first asked for', okRes.headers().location, PAGE);
  const after = new URL(page.url());
  eq('c: lands on /some/page.html?x=1', after.pathname + after.search, PAGE);
  eq('c: the upstream page shows dr.martin', (await page.textContent('#user'))?.trim(), USER);
  const hits = upstreamHits();
  check(
    'c: the upstream got X-Vigie-User: dr.martin',
    hits.length >= 1 && hits.every((h) => h.user === USER),
    JSON.stringify(hits),
  );
  const setCookie = (await okRes.headerValue('set-cookie')) ?? '';
  check('c: Set-Cookie __Host-vigie; Secure; HttpOnly; SameSite=Lax; Path=/',
    /^__Host-vigie=/m.test(setCookie) && /;\s*Secure/i.test(setCookie) && /;\s*HttpOnly/i.test(setCookie) &&
      /;\s*SameSite=Lax/i.test(setCookie) && /;\s*Path=\//i.test(setCookie) && !/;\s*Domain=/i.test(setCookie),
    setCookie);
  const session = (await context.cookies(origin)).find((c) => c.name === '__Host-vigie');
  check('c: the browser keeps the session cookie (secure, httpOnly, Lax)',
    !!session && session.secure && session.httpOnly && session.sameSite === 'Lax', JSON.stringify(session));
  eq('c: scripts cannot read the session cookie', await page.evaluate(() => document.cookie.includes('__Host-vigie')), false);
  await page.goto(`${origin}/_vigie/login?next=${encodeURIComponent('/other.html')}`);
  eq('c: the sign-in page sends a signed-in user on to next', pathOf(), '/other.html');

  // d. Sign out.
  console.log('# d. sign out');
  await page.goto(`${origin}/_vigie/logout`);
  eq('d: /_vigie/logout shows the sign-out page', pathOf(), '/_vigie/logout');
  check('d: it names the signed-in user', (await page.textContent('main'))?.includes(USER));
  const button = page.locator('form[action="/_vigie/logout"] button[type="submit"]');
  eq('d: "Se déconnecter" button in a POST form',
    `${(await button.textContent())?.trim()} ${(await page.getAttribute('form[action="/_vigie/logout"]', 'method'))?.toLowerCase()}`,
    'Se déconnecter post');
  if (EXTRA_SHOTS) await page.screenshot({ path: path.join(EXTRA_SHOTS, 'signout.png'), fullPage: true });
  await Promise.all([page.waitForURL(/signed_out=1/), button.click()]);
  const out = new URL(page.url());
  eq('d: lands on /_vigie/login?signed_out=1', out.pathname + out.search, '/_vigie/login?signed_out=1');
  check('d: the signed-out notice is shown',
    (await page.locator('.notice.info[role="status"]').textContent().catch(() => ''))?.includes('Vous êtes déconnecté'));
  check('d: the session cookie is gone', !(await context.cookies(origin)).some((c) => c.name === '__Host-vigie'));
  if (EXTRA_SHOTS) await page.screenshot({ path: path.join(EXTRA_SHOTS, 'signed-out.png'), fullPage: true });
  // History: Back from the signed-out page must not show the upstream page again (the gateway
  // sends no-store; Back to a page needing a session asks for sign-in).
  const shown = [];
  for (let i = 0; i < 2; i++) {
    await page.goBack().catch(() => null);
    shown.push(page.url());
  }
  check('d: Back after sign-out shows the sign-in page, not the upstream page',
    shown.every((u) => new URL(u).pathname === '/_vigie/login') && (await page.locator('#user').count()) === 0,
    shown.join(' , '));
  const before = upstreamHits().length;
  await page.goto(`${origin}/some/page.html`);
  eq('d: the page asks for sign-in again', pathOf(), '/_vigie/login');
  eq('d: ... with next=/some/page.html', new URL(page.url()).searchParams.get('next'), '/some/page.html');
  // The old cookie itself is revoked on the server, not merely deleted in the browser.
  await context.addCookies([session]);
  await page.goto(origin + PAGE);
  eq('d: the old session cookie is refused after sign-out', pathOf(), '/_vigie/login');
  eq('d: the upstream saw nothing after sign-out', upstreamHits().length, before);

  const foreignAll = requests.filter((u) => new URL(u).origin !== origin);
  check('no request to any other origin during the whole flow', foreignAll.length === 0, foreignAll.join(', '));
}

// What is running, for the watchdog (the normal path cleans up in main's finally).
const live = { tmp: null, upstream: null, gateway: null, context: null };
deadline(DEADLINE_MS, () => {
  live.gateway?.child.kill('SIGKILL');
  if (live.tmp && process.env.VIGIE_E2E_KEEP !== '1') rmSync(live.tmp, { recursive: true, force: true });
  // playwright-core kills the browsers it launched when the process exits.
});

const started = Date.now();
try {
  await main();
} catch (e) {
  check('the test ran to its end', false, e?.stack || String(e));
}
console.log(`# ${((Date.now() - started) / 1000).toFixed(1)} s`);
finish();
