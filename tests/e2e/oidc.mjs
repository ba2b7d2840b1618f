// End-to-end test of the sign-in through OpenID providers, in Debian's Chromium (playwright-core),
// through Vigie, to the real Orthanc. scripts/e2e.sh starts two real test providers
// (tests/idp/server.mjs, npm oidc-provider): `psc`, the Pro Santé Connect look-alike, and
// `clinic`, a clinic's own provider (generic profile), both with LOGIN_MODE=auto (the provider
// signs its default user in with redirects alone), and configures them in the gateway beside
// the local accounts. Each section runs in a fresh browser (its own profile). It checks:
//   a. the viewer URL leads to the sign-in page, which shows the buttons #oidc-psc and
//      #oidc-clinic beside the password form; #oidc-psc goes to the provider (code flow, PKCE
//      S256, acr_values=eidas1, the binding cookie) and back to the viewer with a session;
//      Orthanc Explorer and the Web Viewer then work exactly as for a local account;
//   b. sign-out goes through the provider's end-session endpoint (id_token_hint,
//      post_logout_redirect_uri, client_id, state), which ends its session and comes back to
//      Vigie's signed-out page; the viewer URL asks for sign-in again, the old cookie is dead;
//   c. the provider stops while a doctor signs in (while Vigie exchanges the code): Vigie's
//      page, 503, in French for a French browser, names no provider URL, code or token; with
//      the provider still down, the button shows the same page without sending the browser
//      there; a local account still signs in;
//   d. `clinic`'s button signs its user in and Orthanc Explorer loads; sign-out.
// One line per check (PASS/FAIL), then "N passed, N failed"; exit 1 on any failure.
//
// Input: VIGIE_E2E_RUN, the JSON file e2e.sh writes (its `oidc` part: each provider's origin,
// issuer, client id, pid and log). Environment: CHROMIUM, VIGIE_E2E_SCREENSHOTS (folder for
// signin-oidc.png, the sign-in page with both buttons; "off" for none).

import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { check, deadline, eq, finish } from './checks.mjs';
import { SHOTS, explorerWorks, launch, loadRun, note, orthancRequest, samples, short, signIn, webViewerWorks } from './browser.mjs';

const DEADLINE_MS = 240_000;
const PSC_LABEL = 'Pro Santé Connect';

/** Resolves once nothing accepts connections on 127.0.0.1:port (false after `ms`). */
async function portClosed(port, ms = 10_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const open = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (!open) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** Stops a test provider (SIGTERM to its pid); true once its port is closed. */
async function stopProvider(idp) {
  try {
    process.kill(idp.pid, 'SIGTERM');
  } catch (e) {
    note(`kill ${idp.pid}: ${e.code}`);
  }
  return portClosed(new URL(idp.origin).port);
}

/** The names of the patients Orthanc holds now (viewer.mjs deleted one, uploaded others), asked
 *  on its own port. */
async function patientsNow(run) {
  const res = await orthancRequest(run, 'GET', '/patients?expand');
  if (res.status !== 200) throw new Error(`Orthanc answered ${res.status} to GET /patients?expand`);
  return JSON.parse(res.body).map((p) => p.MainDicomTags.PatientName);
}

/** The cookies of `context` for the gateway, by name. */
async function cookieJar(context, origin) {
  return new Map((await context.cookies(origin)).map((c) => [c.name, c]));
}

/** The answer to the next navigation to `pathname` on the gateway. */
const answerAt = (page, pathname, timeout = 30_000) =>
  page.waitForResponse((r) => new URL(r.url()).pathname === pathname && r.request().isNavigationRequest(), { timeout }).catch(() => null);

/** Checks the Set-Cookie of the start answer: the binding cookie, as a __Host- cookie. */
function bindingSet(tag, setCookie) {
  const line = setCookie.split('\n').find((l) => l.startsWith('__Host-vigie-oidc=')) ?? '';
  check(`${tag}: the start sets __Host-vigie-oidc; Secure; HttpOnly; SameSite=Lax; Path=/`,
    /;\s*Secure/i.test(line) && /;\s*HttpOnly/i.test(line) && /;\s*SameSite=Lax/i.test(line) && /;\s*Path=\//i.test(line) && !/;\s*Domain=/i.test(line),
    setCookie || 'no Set-Cookie');
}

/** A fresh Chromium (its own profile) whose requests to origins other than the gateway's and
 *  the providers' are collected in `foreign`. */
async function browser(run, name, locale, foreign) {
  const allowed = new Set([run.origin, ...Object.values(run.oidc).map((p) => p.origin)]);
  const context = await launch(run, path.join(run.work, `chromium-${name}`), locale);
  live.contexts.push(context);
  context.on('request', (r) => {
    const u = new URL(r.url());
    if (!allowed.has(u.origin) && !['data:', 'blob:'].includes(u.protocol)) foreign.push(r.url());
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return { context, page };
}

async function main() {
  const run = loadRun();
  const { origin } = run;
  const { viewerPath } = samples(run);
  const { psc, clinic } = run.oidc;
  note(`gateway ${origin}; providers psc ${psc.issuer} (pid ${psc.pid}), clinic ${clinic.issuer} (pid ${clinic.pid})`);
  const foreign = [];
  const patients = await patientsNow(run);

  // ---- a. Pro Santé Connect: sign-in, then the viewers ----
  console.log('# a. Pro Santé Connect: sign-in, Orthanc Explorer, Web Viewer');
  const a = await browser(run, 'psc', 'en-GB', foreign);
  {
    const { page, context } = a;
    const navigations = [];
    page.on('request', (r) => r.isNavigationRequest() && r.frame() === page.mainFrame() && navigations.push(r.url()));
    await page.goto(origin + viewerPath);
    const landed = new URL(page.url());
    check('a: the viewer URL leads to the sign-in page (next = the viewer URL)',
      landed.pathname === '/_vigie/login' && landed.searchParams.get('next') === viewerPath, page.url());
    const button = page.locator('a.oidc#oidc-psc');
    eq('a: one #oidc-psc button', await button.count(), 1);
    eq(`a: it reads "Sign in with ${PSC_LABEL}"`, (await button.textContent().catch(() => ''))?.trim(), `Sign in with ${PSC_LABEL}`);
    const href = new URL((await button.getAttribute('href').catch(() => null)) ?? '/', origin);
    check('a: it links to /_vigie/oidc/psc/start with next = the viewer URL',
      href.pathname === '/_vigie/oidc/psc/start' && href.searchParams.get('next') === viewerPath, href.href);
    eq('a: the #oidc-clinic button is there too', await page.locator('a.oidc#oidc-clinic').count(), 1);
    check('a: ... beside the password form (local accounts)',
      (await page.locator('form[action="/_vigie/login"] #username').count()) === 1 && (await page.locator('#password').count()) === 1);
    if (SHOTS !== 'off') {
      await page.screenshot({ path: path.join(SHOTS, 'signin-oidc.png'), fullPage: true });
      note(`screenshot ${path.join(SHOTS, 'signin-oidc.png')}`);
    }

    const started = answerAt(page, '/_vigie/oidc/psc/start');
    const called = answerAt(page, '/_vigie/oidc/psc/callback');
    await Promise.all([page.waitForURL((u) => u.pathname === '/web-viewer/app/viewer.html', { timeout: 30_000 }), button.click()]);
    const start = await started;
    eq('a: the start answers 303', start?.status(), 303);
    const to = new URL(start?.headers().location ?? 'about:blank');
    const q = to.searchParams;
    check(`a: ... to the authorization endpoint of the wallet discovery (${psc.origin}/auth)`, `${to.origin}${to.pathname}` === `${psc.origin}/auth`, to.href);
    check('a: ... code flow: response_type=code, our client_id and redirect_uri',
      q.get('response_type') === 'code' && q.get('client_id') === psc.clientId && q.get('redirect_uri') === `${origin}/_vigie/oidc/psc/callback`,
      `${q.get('response_type')} ${q.get('client_id')} ${q.get('redirect_uri')}`);
    check('a: ... scope "openid scope_all", acr_values=eidas1',
      (q.get('scope') ?? '').split(' ').sort().join(' ') === 'openid scope_all' && q.get('acr_values') === 'eidas1', `${q.get('scope')} | ${q.get('acr_values')}`);
    check('a: ... state, nonce, PKCE S256',
      (q.get('state') ?? '').length >= 16 && (q.get('nonce') ?? '').length >= 16 && q.get('code_challenge_method') === 'S256' && /^[\w-]{43}$/.test(q.get('code_challenge') ?? ''),
      `state ${q.get('state')?.length}, nonce ${q.get('nonce')?.length}, ${q.get('code_challenge_method')}`);
    bindingSet('a', (await start?.headerValue('set-cookie')) ?? '');
    const back = await called;
    eq('a: the callback answers 303', back?.status(), 303);
    eq('a: ... to the viewer URL first asked for', back?.headers().location, viewerPath);
    const setCookie = (await back?.headerValue('set-cookie')) ?? '';
    check('a: ... with the session cookie __Host-vigie (Secure, HttpOnly, SameSite=Lax) and the binding cleared',
      /^__Host-vigie=[^;]+;/m.test(setCookie) && /^__Host-vigie-oidc=;.*Max-Age=0/im.test(setCookie), setCookie);
    eq('a: the browser lands back on the viewer', page.url(), origin + viewerPath);
    const viaProvider = navigations.filter((u) => u.startsWith(`${psc.origin}/`));
    check('a: ... having passed through the provider (automatic login, redirects only)', viaProvider.length >= 2, navigations.join(' -> '));
    const jar = await cookieJar(context, origin);
    const session = jar.get('__Host-vigie');
    check('a: the browser keeps the session cookie (secure, httpOnly, Lax)',
      !!session && session.secure && session.httpOnly && session.sameSite === 'Lax', JSON.stringify(session));
    check('a: ... and no binding cookie', !jar.has('__Host-vigie-oidc'), JSON.stringify(jar.get('__Host-vigie-oidc')));

    await page.goto('about:blank');
    await explorerWorks(page, run, 'a', { patients });
    await webViewerWorks(page, run, 'a');
  }

  // ---- b. sign-out through the provider ----
  console.log('# b. Pro Santé Connect: sign-out round trip');
  {
    const { page, context } = a;
    const session = (await cookieJar(context, origin)).get('__Host-vigie');
    await page.goto(`${origin}/_vigie/logout`);
    check('b: the sign-out page names 810000000001', (await page.textContent('main').catch(() => ''))?.includes('810000000001'));
    const idpLogBefore = readFileSync(psc.log, 'utf8').length;
    const seen = [];
    const onRequest = (r) => r.frame() === page.mainFrame() && r.isNavigationRequest() && seen.push({ method: r.method(), url: r.url() });
    page.on('request', onRequest);
    const submitted = page.waitForResponse((r) => new URL(r.url()).pathname === '/_vigie/logout' && r.request().method() === 'POST');
    await Promise.all([
      page.waitForURL(/signed_out=1/, { timeout: 30_000 }),
      page.click('form[action="/_vigie/logout"] button[type="submit"]'),
    ]);
    page.off('request', onRequest);
    const out = await submitted;
    const endSession = `${psc.issuer}/protocol/openid-connect/logout`;
    const loc = new URL(out.headers().location ?? 'about:blank', origin);
    eq('b: the sign-out answers 303 to the provider\'s end-session endpoint', `${out.status()} ${loc.origin}${loc.pathname}`, `303 ${endSession}`);
    const q = loc.searchParams;
    check('b: ... with id_token_hint (a JWT), post_logout_redirect_uri, client_id and state',
      /^[\w-]+\.[\w-]+\.[\w-]+$/.test(q.get('id_token_hint') ?? '') && q.get('post_logout_redirect_uri') === `${origin}/_vigie/oidc/psc/signed-out` &&
        q.get('client_id') === psc.clientId && (q.get('state') ?? '').length >= 16,
      `post_logout_redirect_uri ${q.get('post_logout_redirect_uri')}, client_id ${q.get('client_id')}, state ${q.get('state')?.length}`);
    const route = seen.map((s) => `${s.method} ${new URL(s.url).origin === origin ? '' : new URL(s.url).origin}${new URL(s.url).pathname}`);
    const i = route.indexOf(`GET ${endSession}`);
    const j = route.findIndex((r, k) => k > i && r.startsWith(`POST ${endSession}`));
    const k = route.indexOf('GET /_vigie/oidc/psc/signed-out');
    check("b: the browser went to the provider, whose page confirmed by itself, then to /_vigie/oidc/psc/signed-out",
      i >= 0 && j > i && k > j, route.join(' -> '));
    eq('b: ... and lands on /_vigie/login?signed_out=1', new URL(page.url()).pathname + new URL(page.url()).search, '/_vigie/login?signed_out=1');
    check('b: the signed-out notice is shown', (await page.locator('.notice.info[role="status"]').textContent().catch(() => ''))?.includes('You are signed out'));
    check("b: the provider ended its session (end_session.success in its log)", readFileSync(psc.log, 'utf8').slice(idpLogBefore).includes('end_session.success'));
    check('b: the session cookie is gone', !(await cookieJar(context, origin)).has('__Host-vigie'));
    await page.goto(origin + viewerPath);
    const landed = new URL(page.url());
    check('b: the viewer URL asks for sign-in again', landed.pathname === '/_vigie/login' && landed.searchParams.get('next') === viewerPath, page.url());
    if (session) {
      await context.addCookies([session]);
      await page.goto(origin + viewerPath);
      eq('b: the old session cookie is refused after sign-out', new URL(page.url()).pathname, '/_vigie/login');
    } else {
      check('b: the session cookie existed before sign-out', false, 'no __Host-vigie cookie');
    }
    await context.close();
  }

  // ---- c. the provider down ----
  console.log('# c. Pro Santé Connect down (French browser)');
  {
    const { page, context } = await browser(run, 'down', 'fr-FR', foreign);
    await page.goto(`${origin}/app/explorer.html`);
    eq('c: the sign-in page is in French', (await page.textContent('h1').catch(() => ''))?.trim(), 'Connexion');
    // The provider goes down while Vigie exchanges the code: its admin API holds the next
    // token answer back 5 s, and the provider is stopped as soon as the browser brings the
    // code to Vigie (Vigie meets a connection that ends without an answer, or none at all).
    const held = await fetch(`${psc.origin}/admin/tamper`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ delay_ms: 5000 }),
    }).catch((e) => ({ status: e.message }));
    eq("c: the provider's admin API holds its next token answer back", held.status, 200);
    let callback = '';
    let stopping = null;
    const onRequest = (r) => {
      const u = new URL(r.url());
      if (u.origin === origin && u.pathname === '/_vigie/oidc/psc/callback' && !stopping) {
        callback = r.url();
        stopping = stopProvider(psc);
      }
    };
    context.on('request', onRequest);
    const called = answerAt(page, '/_vigie/oidc/psc/callback');
    await page.click('#oidc-psc');
    const res = await called;
    await page.waitForLoadState().catch(() => {});
    context.off('request', onRequest);
    check('c: the provider stopped during the callback', (await stopping) === true, `pid ${psc.pid}`);
    check('c: Vigie answers the callback with 503', res?.status() === 503, `${res?.status()} ${page.url()}`);
    const failurePage = async (tag) => {
      eq(`${tag}: the page is in French (html lang)`, await page.getAttribute('html', 'lang').catch(() => null), 'fr');
      eq(`${tag}: its heading reads "Connexion impossible"`, (await page.textContent('h1').catch(() => ''))?.trim(), 'Connexion impossible');
      check(`${tag}: it says the identification service is not answering`,
        (await page.locator('.notice.error[role="alert"]').textContent().catch(() => ''))?.includes("Le service d'identification ne répond pas"),
        short(await page.textContent('main').catch(() => '')));
      eq(`${tag}: it links back to the sign-in page`, await page.getAttribute('a#back-to-sign-in', 'href').catch(() => null), '/_vigie/login?lang=fr');
      const html = await page.content();
      const cb = new URL(callback || 'http://x/');
      const secrets = [
        psc.origin, `127.0.0.1:${new URL(psc.origin).port}`, psc.issuer, 'esante-wallet', 'eyJ', 'token', 'code=',
        cb.searchParams.get('code'), cb.searchParams.get('state'),
      ].filter(Boolean);
      const leaked = secrets.filter((s) => html.includes(s));
      check(`${tag}: it names no provider URL, no code, state or token`, leaked.length === 0, leaked.join(', '));
      check(`${tag}: no session cookie`, !(await cookieJar(context, origin)).has('__Host-vigie'));
    };
    await failurePage('c');

    // The provider still down, the button again: the exchange that failed marked it down, so
    // Vigie checks it answers before sending anyone there, and shows its own page (503) rather
    // than letting the browser meet the provider's absence.
    await Promise.all([page.waitForURL((u) => u.pathname === '/_vigie/login'), page.click('a#back-to-sign-in')]);
    const restarted = answerAt(page, '/_vigie/oidc/psc/start', 15_000);
    const toProvider = [];
    page.on('request', (r) => { if (r.url().startsWith(`${psc.origin}/`)) toProvider.push(r.url()); });
    await page.click('#oidc-psc');
    const again = await restarted;
    eq('c: with the provider still down, #oidc-psc answers Vigie\'s page (503)', again?.status(), 503);
    check('c: ... and the browser is never sent to the provider', toProvider.length === 0, toProvider.join(' '));
    await failurePage('c (button again)');

    // A local account still signs in.
    await page.goto(`${origin}/app/explorer.html`);
    const local = await signIn(page, run.accounts.standby);
    eq(`c: a local account (${run.accounts.standby.username}) still signs in (303)`, local.status(), 303);
    eq('c: ... and lands on /app/explorer.html', new URL(page.url()).pathname, '/app/explorer.html');
    await context.close();
  }

  // ---- d. a clinic's own provider (generic profile) ----
  console.log('# d. the clinic provider (generic OpenID Connect)');
  {
    const { page, context } = await browser(run, 'clinic', 'en-GB', foreign);
    await page.goto(`${origin}/app/explorer.html`);
    eq('d: the Explorer asks for sign-in first', new URL(page.url()).pathname, '/_vigie/login');
    eq(`d: the #oidc-clinic button reads "Sign in with ${clinic.label}"`, (await page.textContent('#oidc-clinic').catch(() => ''))?.trim(), `Sign in with ${clinic.label}`);
    const started = answerAt(page, '/_vigie/oidc/clinic/start');
    await Promise.all([page.waitForURL((u) => u.pathname === '/app/explorer.html', { timeout: 30_000 }), page.click('#oidc-clinic')]);
    const start = await started;
    const to = new URL(start?.headers().location ?? 'about:blank');
    check(`d: the start sends the browser to ${clinic.issuer}/protocol/openid-connect/auth (standard discovery), without acr_values`,
      start?.status() === 303 && `${to.origin}${to.pathname}` === `${clinic.issuer}/protocol/openid-connect/auth` && !to.searchParams.has('acr_values'),
      `${start?.status()} ${to.href}`);
    eq('d: ... scope "openid profile email"', (to.searchParams.get('scope') ?? '').split(' ').sort().join(' '), 'email openid profile');
    bindingSet('d', (await start?.headerValue('set-cookie')) ?? '');
    eq('d: the browser lands back on /app/explorer.html', new URL(page.url()).pathname, '/app/explorer.html');
    await page.goto('about:blank');
    await explorerWorks(page, run, 'd', { patients });
    await page.goto(`${origin}/_vigie/logout`);
    check(`d: the sign-out page names ${clinic.user}`, (await page.textContent('main').catch(() => ''))?.includes(clinic.user));
    await Promise.all([
      page.waitForURL(/signed_out=1/, { timeout: 30_000 }),
      page.click('form[action="/_vigie/logout"] button[type="submit"]'),
    ]).catch(() => {});
    eq('d: sign-out (through the provider) lands on /_vigie/login?signed_out=1', new URL(page.url()).pathname + new URL(page.url()).search, '/_vigie/login?signed_out=1');
    check('d: the session cookie is gone', !(await cookieJar(context, origin)).has('__Host-vigie'));
    await context.close();
  }

  check('no request to any origin but the gateway and the two providers', foreign.length === 0, [...new Set(foreign)].slice(0, 5).join(', '));
}

// What is running, for the normal end and the watchdog.
const live = { contexts: [] };
deadline(DEADLINE_MS);

const started = Date.now();
try {
  await main();
} catch (e) {
  check('the test ran to its end', false, e?.stack || String(e));
} finally {
  for (const c of live.contexts) await c.close().catch(() => {});
}
console.log(`# OpenID browser part: ${((Date.now() - started) / 1000).toFixed(1)} s`);
finish();
