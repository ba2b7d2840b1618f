// End-to-end test of Vigie in front of a real Orthanc (Explorer, Web Viewer, DICOMweb), with
// Debian's Chromium driven by playwright-core. scripts/e2e.sh starts Orthanc (loopback only,
// HTTP Basic credentials that only Vigie has), loads real DICOM files, starts `vigie serve` with
// the Orthanc access preset and its accounts, then runs this file, which checks:
//   a. without a session, every Orthanc URL is sent to sign-in (browser navigation: 303 to
//      /_vigie/login?next=...) or refused (XHR, fetch, DICOMweb client: 401);
//   b. the doctor (role doctor only) signs in (password + TOTP); Orthanc Explorer lists the
//      loaded patients, every request it makes succeeds;
//   c. the Web Viewer draws a non-blank image of the synthetic CT (canvas pixels are read);
//   d. DICOMweb QIDO and WADO-RS answer through the gateway, and their absolute URLs name the
//      gateway (https://viewer.test:<port>/), never Orthanc's loopback address;
//   e. this doctor gets no ZIP archive and cannot upload (the preset's optional roles); a doctor
//      who has them (download, upload) signs in instead: downloads (file, ZIP archive,
//      WADO-URI) and uploads (REST, STOW-RS) go through; the session is refused on an unsafe
//      request from another site; sections f and h are this second doctor's;
//   f. the access policy: the doctor cannot delete (not even through Orthanc's method faking:
//      X-HTTP-Method-Override, or ?_method=delete behind a link on another site), nor reach
//      /tools/; nobody runs Lua;
//   g. Orthanc itself listens on loopback only and answers nobody without its credentials;
//   h. signing out closes the viewer again;
//   i. the admin reaches /tools/now and may delete, but still cannot run Lua.
// One line per check (PASS/FAIL), then "N passed, N failed"; exit 1 on any failure.
//
// Input: VIGIE_E2E_RUN, the JSON file e2e.sh writes (addresses, accounts, sample manifest).
// Environment: CHROMIUM (default /usr/bin/chromium), VIGIE_E2E_SCREENSHOTS (folder for
// explorer.png and viewer.png, default docs/ of the repository; "off" for none).
// VIGIE_E2E_URLS: a file to append every request sent to the gateway to ("METHOD path?query
// browser|node"), to refresh src/audit/access/real-urls.txt.

import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { selfCheck } from './totp.mjs';
import { check, deadline, eq, finish } from './checks.mjs';
import { CHROMIUM } from './chromium.mjs';
import { explorerWorks, launch, loadRun, note, orthancRequest, pageFetch, samples, short, signIn, webViewerWorks } from './browser.mjs';

const DEADLINE_MS = 240_000;
// Vigie's own refusal page (src/error_page.rs): tells a gateway refusal from an Orthanc one.
const GATEWAY_403 = 'Access to this resource is refused.';
const BLANK = '/__e2e__/blank.html';

// ---- HTTP clients -------------------------------------------------------------------------

/** A request to the gateway from Node, as a script or DICOMweb client would send it. TLS is
 *  verified against the development CA for the public name (no certificate check disabled). */
function gatewayRequest(run, method, target, headers = {}, body) {
  if (process.env.VIGIE_E2E_URLS) appendFileSync(process.env.VIGIE_E2E_URLS, `${method} ${target} node\n`);
  const { port, host, ca } = run.gateway;
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        servername: host,
        ca,
        method,
        path: target,
        agent: false,
        timeout: 15_000,
        headers: { host: `${host}:${port}`, 'user-agent': 'vigie-e2e', ...headers },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from the gateway within 15 s for ${method} ${target}`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Can a TCP connection be opened to address:port? Resolves 'connected', or the error code. */
function tcpConnect(address, port, timeoutMs = 3_000) {
  return new Promise((resolve) => {
    const s = net.connect({ host: address, port, timeout: timeoutMs });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('timeout', () => {
      s.destroy();
      resolve('ETIMEDOUT');
    });
    s.once('error', (e) => resolve(e.code || String(e)));
  });
}

/** The TLS handshake for the public name verifies against the development CA. */
function tlsVerifies(run) {
  return new Promise((resolve) => {
    const s = tls.connect(
      { host: '127.0.0.1', port: run.gateway.port, servername: run.gateway.host, ca: run.gateway.ca, ALPNProtocols: ['h2', 'http/1.1'] },
      () => {
        const out = { authorized: s.authorized, error: s.authorizationError, alpn: s.alpnProtocol, version: s.getProtocol() };
        s.end();
        resolve(out);
      },
    );
    s.once('error', (e) => resolve({ authorized: false, error: e.message }));
  });
}

// ---- helpers ------------------------------------------------------------------------------

/** The number of files in a ZIP archive (given as a latin1 string): its central directory's
 *  "end" record says how many entries it holds. */
function zipEntries(body) {
  const end = body.lastIndexOf('PK\x05\x06');
  if (end < 0 || end + 12 > body.length) return -1;
  return body.charCodeAt(end + 10) | (body.charCodeAt(end + 11) << 8);
}

/** Every absolute http(s) URL in a text. */
const absoluteUrls = (text) => [...String(text).matchAll(/https?:\/\/[^"\s\\]+/g)].map((m) => m[0]);

// ---- the test -----------------------------------------------------------------------------

async function main() {
  selfCheck();
  const run = loadRun();
  live.run = run;
  const { gateway } = run;
  const { origin } = run;
  const { synth, first, studies, patients, viewerPath } = samples(run);
  const ct = run.manifest.find((m) => m.file === 'CT_small.dcm');
  const mr = run.manifest.find((m) => m.file === 'MR_small.dcm');
  note(`gateway ${origin} (127.0.0.1), Orthanc http://127.0.0.1:${run.orthanc.port} (pid ${run.orthanc.pid}), Chromium ${CHROMIUM}`);
  note(`${run.manifest.length} instances: ${patients.length} patients, ${studies.length} studies; synthetic series ${first.series} (${synth.length} slices)`);

  const hs = await tlsVerifies(run);
  check(`tls: the certificate for ${gateway.host} verifies against the development CA`, hs.authorized, `${hs.error}`);
  note(`TLS ${hs.version}, ALPN ${hs.alpn}`);

  // ---- Chromium ----
  live.context = await launch(run, run.profile);
  const context = live.context;
  const page = context.pages()[0] ?? (await context.newPage());
  const foreign = [];
  context.on('request', (r) => {
    const u = new URL(r.url());
    // attacker.test is a page the browser itself serves (section f), never fetched from anywhere.
    if (u.origin !== origin && u.origin !== 'https://attacker.test' && !['data:', 'blob:'].includes(u.protocol)) foreign.push(r.url());
  });
  const pathOf = () => new URL(page.url()).pathname;
  // A blank page on the gateway's origin, served by the browser itself (the request never
  // leaves it): the gateway's own pages forbid fetch() through their CSP, so the checks that
  // use the browser's fetch() run from here.
  await context.route(origin + BLANK, (r) => r.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>e2e</title>' }));
  const toBlank = () => page.goto(origin + BLANK);

  // ---- a. without a session ----
  console.log('# a. without a session');
  const guarded = [
    '/app/explorer.html',
    '/patients',
    '/dicom-web/studies',
    viewerPath,
    `/instances/${ct.instance}/preview`,
  ];
  for (const target of guarded) {
    const res = await page.goto(origin + target);
    const hop = res?.request().redirectedFrom();
    const hopRes = hop && (await hop.response());
    const landed = new URL(page.url());
    check(
      `a: browser navigation to ${target} -> 303 to /_vigie/login?next=<that URL>`,
      hopRes?.status() === 303 && landed.pathname === '/_vigie/login' && landed.searchParams.get('next') === target && res?.status() === 200,
      `first answer ${hopRes?.status() ?? res?.status()}, landed on ${page.url()}`,
    );
  }
  // The browser's own fetch(), as the viewers' XHRs send it.
  await toBlank();
  for (const target of guarded) {
    const r = await pageFetch(page, target, { headers: { accept: 'application/json' } });
    eq(`a: browser fetch() of ${target} -> 401`, r.status, 401);
  }
  for (const target of guarded) {
    const r = await gatewayRequest(run, 'GET', target, {
      accept: target.startsWith('/dicom-web/') ? 'application/dicom+json' : 'application/json, */*',
      'x-requested-with': 'XMLHttpRequest',
    });
    check(`a: XHR-like request from Node to ${target} -> 401, no Orthanc data`,
      r.status === 401 && !r.body.includes(ct.instance) && !r.body.includes('MainDicomTags'), `got ${r.status}: ${short(r.body)}`);
  }
  {
    const basic = Buffer.from(`${run.orthanc.user}:${run.orthancPassword}`).toString('base64');
    const r = await gatewayRequest(run, 'GET', '/patients', { accept: 'application/json', authorization: `Basic ${basic}` });
    eq("a: Orthanc's own credentials do not open the gateway (/patients -> 401)", r.status, 401);
  }
  {
    const r = await gatewayRequest(run, 'DELETE', `/studies/${ct.study}`, { accept: 'application/json' });
    eq('a: DELETE without a session -> 401', r.status, 401);
  }

  // ---- b. the doctor signs in; Orthanc Explorer ----
  console.log('# b. doctor: sign-in and Orthanc Explorer');
  await page.goto(`${origin}/app/explorer.html`);
  eq('b: the Explorer asks for sign-in first', pathOf(), '/_vigie/login');
  const doctorRes = await signIn(page, run.accounts.doctor);
  eq('b: doctor signs in with password + TOTP (303)', doctorRes.status(), 303);
  eq('b: ... and lands on /app/explorer.html', pathOf(), '/app/explorer.html');
  {
    const res = await page.goto(`${origin}/`);
    const h = res?.headers() ?? {};
    eq("b: / follows Orthanc's redirect to the Explorer on the gateway's origin", page.url(), `${origin}/app/explorer.html`);
    check(
      'b: proxied answers carry HSTS and Cache-Control no-store, and no Orthanc Server header',
      /max-age=\d+/.test(h['strict-transport-security'] ?? '') && /no-store/.test(h['cache-control'] ?? '') && !/orthanc/i.test(h.server ?? ''),
      `strict-transport-security: ${h['strict-transport-security']}; cache-control: ${h['cache-control']}; server: ${h.server}`,
    );
  }
  await toBlank();
  await explorerWorks(page, run, 'b', { shot: 'explorer.png' });

  // ---- c. the Web Viewer ----
  console.log('# c. doctor: Orthanc Web Viewer');
  {
    await webViewerWorks(page, run, 'c', { shot: 'viewer.png' });
    const preview = await pageFetch(page, `/instances/${ct.instance}/preview`, { headers: { accept: 'image/png' } });
    check('c: /instances/<id>/preview is a PNG', preview.status === 200 && preview.body.startsWith('\x89PNG'),
      `status ${preview.status}, ${preview.contentType}`);
  }

  // ---- d. DICOMweb ----
  console.log('# d. doctor: DICOMweb through the gateway');
  {
    const qido = await pageFetch(page, '/dicom-web/studies', { headers: { accept: 'application/dicom+json' } });
    let list = [];
    try {
      list = JSON.parse(qido.body);
    } catch {}
    const found = list.map((s) => s['0020000D']?.Value?.[0]);
    check('d: QIDO /dicom-web/studies -> 200 application/dicom+json', qido.status === 200 && /application\/dicom\+json/.test(qido.contentType),
      `${qido.status} ${qido.contentType}`);
    check(`d: QIDO lists the ${studies.length} loaded StudyInstanceUIDs`, studies.every((u) => found.includes(u)), `found ${found.join(', ')}`);
    const retrieve = list.map((s) => s['00081190']?.Value?.[0]);
    check(
      `d: QIDO RetrieveURL (0008,1190) is ${origin}/dicom-web/studies/<uid>`,
      retrieve.length > 0 && retrieve.every((u, i) => u === `${origin}/dicom-web/studies/${found[i]}`),
      retrieve.join(', '),
    );

    const base = `/dicom-web/studies/${first.studyUid}/series/${first.seriesUid}`;
    const seriesQ = await pageFetch(page, `/dicom-web/studies/${first.studyUid}/series`, { headers: { accept: 'application/dicom+json' } });
    const instQ = await pageFetch(page, `${base}/instances`, { headers: { accept: 'application/dicom+json' } });
    const meta = await pageFetch(page, `${base}/metadata`, { headers: { accept: 'application/dicom+json' } });
    let metaList = [];
    try {
      metaList = JSON.parse(meta.body);
    } catch {}
    check(`d: WADO-RS ${base}/metadata -> ${synth.length} instances`, meta.status === 200 && metaList.length === synth.length,
      `${meta.status}, ${metaList.length} items`);
    const wado = await pageFetch(page, `${base}/instances/${first.sopUid}`, {
      headers: { accept: 'multipart/related; type="application/dicom"' },
    });
    check(
      'd: WADO-RS instance -> 200 multipart/related with the DICOM file',
      wado.status === 200 && /^multipart\/related/.test(wado.contentType) && wado.body.includes('DICM') && wado.body.includes(first.sopUid),
      `${wado.status} ${wado.contentType}, ${wado.body.length} bytes`,
    );
    const frame = await pageFetch(page, `${base}/instances/${first.sopUid}/frames/1`, {
      headers: { accept: 'multipart/related; type="application/octet-stream"' },
    });
    check('d: WADO-RS frames/1 -> 200 multipart/related', frame.status === 200 && /^multipart\/related/.test(frame.contentType),
      `${frame.status} ${frame.contentType}`);
    const answers = [qido.body, seriesQ.body, instQ.body, meta.body];
    const urls = answers.flatMap(absoluteUrls).filter((u) => !u.startsWith('http://dicom.nema.org'));
    const wrong = urls.filter((u) => !u.startsWith(`${origin}/`));
    check(`d: every absolute URL in QIDO/WADO answers starts with ${origin}/ (${urls.length} seen)`, urls.length > 0 && wrong.length === 0,
      [...new Set(wrong)].slice(0, 5).join(', '));
    const leaks = answers.filter((b) => b.includes(`127.0.0.1:${run.orthanc.port}`) || b.includes(`localhost:${run.orthanc.port}`));
    eq("d: no DICOMweb answer mentions Orthanc's loopback address", leaks.length, 0);
  }

  // ---- e. downloads and uploads ----
  console.log('# e. doctor: no archive, no upload without the optional roles');
  {
    const zip = await pageFetch(page, `/studies/${first.study}/archive`);
    check('e: the doctor without the role download gets no ZIP archive (403 from the gateway)',
      zip.status === 403 && zip.body.includes(GATEWAY_403), `${zip.status}: ${short(zip.body)}`);
    // An empty body: nothing would be stored even if the gateway let it through.
    const up = await pageFetch(page, '/instances', { method: 'POST', headers: { 'content-type': 'application/dicom' } });
    check('e: the doctor without the role upload cannot POST /instances (403 from the gateway)',
      up.status === 403 && up.body.includes(GATEWAY_403), `${up.status}: ${short(up.body)}`);
    await page.goto(`${origin}/_vigie/logout`);
    await Promise.all([page.waitForURL(/signed_out=1/), page.click('form[action="/_vigie/logout"] button[type="submit"]')]);
    await page.goto(`${origin}/app/explorer.html`);
    const res = await signIn(page, run.accounts.trusted);
    eq('e: a doctor with the roles download and upload signs in (303)', res.status(), 303);
    await toBlank();
  }
  const uploaded = { rest: null, stow: null }; // Orthanc ids of the studies uploaded here
  console.log('# e. doctor with download and upload: downloads and uploads through the gateway');
  {
    const original = readFileSync(path.join(run.samples, ct.file));
    const file = await pageFetch(page, `/instances/${ct.instance}/file`);
    check(
      'e: /instances/<id>/file -> the DICOM file, byte for byte',
      file.status === 200 && Buffer.from(file.body, 'latin1').equals(original),
      `${file.status} ${file.contentType}, ${file.body.length} bytes, want ${original.length}`,
    );
    const zip = await pageFetch(page, `/studies/${first.study}/archive`);
    check(
      `e: /studies/<id>/archive -> a ZIP of the ${synth.length}-slice study`,
      zip.status === 200 && zip.body.startsWith('PK\x03\x04') && zipEntries(zip.body) === synth.length,
      `${zip.status} ${zip.contentType}, ${zip.body.length} bytes, ${zipEntries(zip.body)} entries`,
    );
    const wadoUri = await pageFetch(
      page,
      `/wado?requestType=WADO&studyUID=${ct.studyUid}&seriesUID=${ct.seriesUid}&objectUID=${ct.sopUid}&contentType=application/dicom`,
    );
    check('e: WADO-URI /wado?requestType=WADO&... -> the DICOM file', wadoUri.status === 200 && wadoUri.body.slice(128, 132) === 'DICM',
      `${wadoUri.status} ${wadoUri.contentType}`);

    const [rest, stow] = run.extra;
    const restBytes = readFileSync(path.join(run.samples, 'extra', rest.file));
    const up = await pageFetch(page, '/instances', {
      method: 'POST',
      headers: { 'content-type': 'application/dicom' },
      bodyBase64: restBytes.toString('base64'),
    });
    let upJson = {};
    try {
      upJson = JSON.parse(up.body);
    } catch {}
    check('e: the doctor uploads a DICOM file (POST /instances -> Success)', up.status === 200 && upJson.Status === 'Success',
      `${up.status}: ${short(up.body)}`);
    uploaded.rest = upJson.ParentStudy;
    const stored = upJson.ID ? await orthancRequest(run, 'GET', `/instances/${upJson.ID}`) : { status: 0 };
    eq('e: ... and Orthanc has it', stored.status, 200);

    const boundary = `vigie-e2e-${Date.now()}`;
    const stowBody = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`),
      readFileSync(path.join(run.samples, 'extra', stow.file)),
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const st = await pageFetch(page, '/dicom-web/studies', {
      method: 'POST',
      headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`, accept: 'application/dicom+json' },
      bodyBase64: stowBody.toString('base64'),
    });
    let stJson = {};
    try {
      stJson = JSON.parse(st.body);
    } catch {}
    const refUrl = stJson['00081199']?.Value?.[0]?.['00081190']?.Value?.[0] ?? '';
    check('e: STOW-RS (POST /dicom-web/studies, multipart/related) stores the instance', st.status === 200 && refUrl.endsWith(stow.sopUid),
      `${st.status}: ${short(st.body)}`);
    check(`e: ... and its RetrieveURL starts with ${origin}/`, refUrl.startsWith(`${origin}/`), refUrl);
    const lookup = await orthancRequest(run, 'POST', '/tools/lookup', { body: stow.studyUid });
    try {
      uploaded.stow = JSON.parse(lookup.body).find((r) => r.Type === 'Study')?.ID;
    } catch {}

    // Orthanc closes idle keep-alive connections after 1 s; the gateway must never hand a
    // request to a connection Orthanc is closing. Requests spaced around that second:
    const gaps = [300, 600, 900, 1000, 1100, 1300, 2000];
    const spaced = [];
    for (const gap of gaps) {
      await page.waitForTimeout(gap);
      spaced.push((await pageFetch(page, '/system')).status);
    }
    check(`e: requests spaced ${gaps.join('/')} ms apart (around Orthanc's 1 s keep-alive close) all succeed`,
      spaced.every((st) => st === 200), spaced.join(' '));

    // The same session from a plain client: accepted from this site, refused from another.
    const cookie = (await context.cookies(origin)).filter((c) => c.name.startsWith('__Host-vigie')).map((c) => `${c.name}=${c.value}`).join('; ');
    const same = await gatewayRequest(run, 'GET', '/patients', { cookie, accept: 'application/json' });
    eq("e: the doctor's session cookie works from a plain client (GET /patients -> 200)", same.status, 200);
    const cross = await gatewayRequest(run, 'POST', '/instances', {
      cookie,
      origin: 'https://attacker.example',
      'sec-fetch-site': 'cross-site',
      'content-type': 'application/dicom',
    }, restBytes);
    eq('e: ... but a POST from another site with it is refused (403)', cross.status, 403);
  }

  // ---- f. the access policy for the doctor ----
  console.log('# f. doctor: access policy');
  {
    const del = await pageFetch(page, `/studies/${ct.study}`, { method: 'DELETE' });
    check('f: the doctor cannot DELETE a study (403 from the gateway)', del.status === 403 && del.body.includes(GATEWAY_403), `${del.status}: ${short(del.body)}`);
    const still = await orthancRequest(run, 'GET', `/studies/${ct.study}`);
    eq('f: ... and the study is still in Orthanc', still.status, 200);
    const now = await pageFetch(page, '/tools/now');
    check('f: the doctor cannot reach /tools/now (403)', now.status === 403 && now.body.includes(GATEWAY_403), `${now.status}: ${short(now.body)}`);
    const nav = await page.goto(`${origin}/tools/now`);
    eq('f: ... nor by navigating to it (403)', nav?.status(), 403);
    await toBlank();
    const lua = await pageFetch(page, '/tools/execute-script', { method: 'POST', body: 'print(42)', headers: { 'content-type': 'text/plain' } });
    check('f: the doctor cannot POST /tools/execute-script (403)', lua.status === 403 && lua.body.includes(GATEWAY_403), `${lua.status}: ${short(lua.body)}`);
    // Orthanc fakes methods: "X-HTTP-Method-Override: DELETE" on any request, or "?_method=delete"
    // on a GET, and runs a DELETE (HttpServer.cpp). The gateway judges the method on the wire.
    if (uploaded.rest) {
      const r = await pageFetch(page, `/studies/${uploaded.rest}`, { headers: { 'x-http-method-override': 'DELETE' } });
      const still = await orthancRequest(run, 'GET', `/studies/${uploaded.rest}`);
      check('f: the doctor cannot delete with GET + X-HTTP-Method-Override: DELETE (study still in Orthanc)', still.status === 200,
        `gateway answered ${r.status}: ${short(r.body, 80)}; Orthanc now answers ${still.status} for the study`);
    } else {
      check('f: the doctor cannot delete with GET + X-HTTP-Method-Override: DELETE', false, 'no uploaded study to try it on (see e:)');
    }
    if (uploaded.stow) {
      // A link on another site: a top-level GET navigation carries the SameSite=Lax session cookie.
      const attacker = 'https://attacker.test';
      const target = `${origin}/studies/${uploaded.stow}?_method=delete`;
      await context.route(`${attacker}/**`, (r) =>
        r.fulfill({ status: 200, contentType: 'text/html', body: `<!doctype html><title>elsewhere</title><a id="go" href="${target}">pictures</a>` }),
      );
      await page.goto(`${attacker}/`);
      const [nav] = await Promise.all([page.waitForNavigation().catch(() => null), page.click('#go')]);
      const still = await orthancRequest(run, 'GET', `/studies/${uploaded.stow}`);
      check("f: a link on another site to /studies/<id>?_method=delete does not delete the study (doctor's browser)", still.status === 200,
        `gateway answered ${nav?.status()}: ${short(await page.textContent('body').catch(() => ''), 80)}; Orthanc now answers ${still.status} for the study`);
      await toBlank();
    } else {
      check('f: a link on another site to /studies/<id>?_method=delete does not delete the study', false, 'no STOW-uploaded study to try it on (see e:)');
    }
    // The Explorer's own search (its Lookup page) is reading: open to doctors.
    const find = await pageFetch(page, '/tools/find', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ Level: 'Study', Query: {}, Limit: 1 }),
    });
    check("f: the doctor's Explorer search works (POST /tools/find -> 200, a study)", find.status === 200 && /^\[\s*"/.test(find.body),
      `${find.status}: ${short(find.body)}`);
    // Modifying with KeepSource false deletes the original: admins only.
    if (uploaded.stow) {
      const mod = await pageFetch(page, `/studies/${uploaded.stow}/modify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ Replace: { StudyDescription: 'changed' }, KeepSource: false, Force: true }),
      });
      const kept = await orthancRequest(run, 'GET', `/studies/${uploaded.stow}`);
      check('f: the doctor cannot modify a study in place (POST /studies/<id>/modify, KeepSource false -> 403, original kept)',
        mod.status === 403 && kept.status === 200, `gateway ${mod.status}: ${short(mod.body)}; Orthanc now answers ${kept.status}`);
    } else {
      check('f: the doctor cannot modify a study in place', false, 'no STOW-uploaded study to try it on (see e:)');
    }
    for (const target of ['/jobs', '/modalities', '/peers']) {
      const r = await pageFetch(page, target);
      check(`f: the doctor cannot list ${target} (admin only, 403)`, r.status === 403, `${r.status}: ${short(r.body)}`);
    }
  }

  // ---- g. Orthanc's own port ----
  console.log("# g. Orthanc's own port");
  {
    let listeners = [];
    try {
      listeners = execFileSync('ss', ['-Hltnp'], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => new RegExp(`pid=${run.orthanc.pid}[,)]`).test(l))
        .map((l) => l.trim().split(/\s+/)[3]);
    } catch (e) {
      note(`ss failed: ${e.message} (apt-get install iproute2)`);
    }
    note(`Orthanc listens on: ${listeners.join(' ') || '(nothing seen: ss needs root to show other users\' processes)'}`);
    const loopback = (a) => /^(127\.\d+\.\d+\.\d+|\[::1\]|\[::ffff:127\.\d+\.\d+\.\d+\]):\d+$/.test(a);
    check(
      `g: ss shows Orthanc's listeners on loopback only (port ${run.orthanc.port} among them)`,
      listeners.length > 0 && listeners.every(loopback) && listeners.some((a) => a.endsWith(`:${run.orthanc.port}`)),
      listeners.join(' ') || 'no listener found for the pid',
    );
    const anon = await orthancRequest(run, 'GET', '/system', { auth: false });
    eq('g: Orthanc without its credentials -> 401', anon.status, 401);
    const authed = await orthancRequest(run, 'GET', '/system');
    eq('g: Orthanc with its credentials -> 200', authed.status, 200);
    const lua = await orthancRequest(run, 'POST', '/tools/execute-script', { body: 'print(42)' });
    check('g: Orthanc itself refuses Lua even with its credentials (ExecuteLuaEnabled false)', lua.status === 403, `${lua.status}: ${short(lua.body)}`);
    const external = [];
    for (const [cmd, args] of [
      ['ip', ['-4', '-o', 'addr', 'show', 'scope', 'global']],
      ['ip', ['-6', '-o', 'addr', 'show', 'scope', 'global']],
    ]) {
      try {
        const out = execFileSync(cmd, args, { encoding: 'utf8' });
        const m = out.match(/inet6?\s+([0-9a-f.:]+)\//i);
        if (m) external.push(m[1]);
      } catch {}
    }
    if (external.length === 0) note('no non-loopback address on this host: the outside connection test is skipped');
    for (const address of external) {
      const r = await tcpConnect(address, run.orthanc.port);
      const where = address.includes(':') ? `[${address}]:${run.orthanc.port}` : `${address}:${run.orthanc.port}`;
      check(`g: a TCP connection to ${where} (this host, not loopback) fails`, r !== 'connected', `${r}`);
    }
  }

  // ---- h. sign-out ----
  console.log('# h. doctor: sign-out');
  {
    const session = (await context.cookies(origin)).find((c) => c.name === '__Host-vigie');
    await page.goto(`${origin}/_vigie/logout`);
    const button = page.locator('form[action="/_vigie/logout"] button[type="submit"]');
    await Promise.all([page.waitForURL(/signed_out=1/), button.click()]);
    eq('h: sign-out lands on /_vigie/login?signed_out=1', new URL(page.url()).pathname + new URL(page.url()).search, '/_vigie/login?signed_out=1');
    const res = await page.goto(origin + viewerPath);
    const landed = new URL(page.url());
    check('h: the viewer URL asks for sign-in again', landed.pathname === '/_vigie/login' && landed.searchParams.get('next') === viewerPath,
      `${res?.status()} ${page.url()}`);
    await toBlank();
    const x = await pageFetch(page, `/web-viewer/series/${first.series}`);
    eq("h: the viewer's XHR (/web-viewer/series/<id>) -> 401", x.status, 401);
    if (session) {
      await context.addCookies([session]);
      await page.goto(origin + viewerPath);
      eq('h: the old session cookie is refused after sign-out', pathOf(), '/_vigie/login');
      await context.clearCookies();
    } else {
      check('h: the session cookie existed before sign-out', false, 'no __Host-vigie cookie');
    }
  }

  // ---- i. the admin ----
  console.log('# i. admin');
  {
    await page.goto(`${origin}/tools/now`);
    eq('i: /tools/now asks for sign-in', pathOf(), '/_vigie/login');
    const adminRes = await signIn(page, run.accounts.admin);
    eq('i: admin signs in with password + TOTP (303)', adminRes.status(), 303);
    eq('i: ... and lands on /tools/now', pathOf(), '/tools/now');
    await toBlank();
    const now = await pageFetch(page, '/tools/now');
    check('i: the admin reaches /tools/now (200, a DICOM date-time)', now.status === 200 && /\d{8}T\d{6}/.test(now.body), `${now.status}: ${short(now.body)}`);
    const lua = await pageFetch(page, '/tools/execute-script', { method: 'POST', body: 'print(42)', headers: { 'content-type': 'text/plain' } });
    check('i: the admin cannot POST /tools/execute-script either (403 from the gateway)', lua.status === 403 && lua.body.includes(GATEWAY_403),
      `${lua.status}: ${short(lua.body)}`);
    const del = await pageFetch(page, `/studies/${mr.study}`, { method: 'DELETE' });
    eq('i: the admin may DELETE a study (the MR one, 200)', del.status, 200);
    const gone = await orthancRequest(run, 'GET', `/studies/${mr.study}`);
    eq('i: ... and Orthanc no longer has it', gone.status, 404);
    await page.goto(`${origin}/_vigie/logout`);
    await Promise.all([page.waitForURL(/signed_out=1/), page.click('form[action="/_vigie/logout"] button[type="submit"]')]);
  }

  check('no request to any other origin during the whole run', foreign.length === 0, [...new Set(foreign)].slice(0, 5).join(', '));
}

// What is running, for the watchdog (the normal path cleans up at the end).
const live = { run: null, context: null };
deadline(DEADLINE_MS);

const started = Date.now();
try {
  await main();
} catch (e) {
  const text = e?.stack || String(e);
  const hint = /ERR_CERT/.test(text)
    ? 'Chromium refused the certificate: it trusts the key of certs/server.crt through --ignore-certificate-errors-spki-list, which needs a --user-data-dir (launchPersistentContext gives one); was the certificate made for viewer.test?'
    : /ERR_CONNECTION_REFUSED|ECONNREFUSED|ECONNRESET/.test(text)
      ? 'the gateway or Orthanc stopped answering: read their logs printed below'
      : /Timeout|timed out/i.test(text)
        ? 'a page or request was too slow: run again on a quieter machine; VIGIE_E2E_KEEP=1 keeps the logs and the Orthanc database'
        : '';
  check('the test ran to its end', false, hint ? `${text}\n  -> ${hint}` : text);
} finally {
  if (live.context) await live.context.close().catch(() => {});
}
console.log(`# browser part: ${((Date.now() - started) / 1000).toFixed(1)} s`);
finish();
