#!/usr/bin/env node
// Vigie's test OpenID provider (tests/it/oidc starts it; see README.md). Loopback only.
// PROFILE=psc imitates Pro Santé Connect; PROFILE=generic stands for a practice's own
// Keycloak/authentik. The protocol is handled entirely by `oidc-provider` (panva, OpenID
// certified); this file only supplies configuration, the test accounts, an automatic login step,
// key rotation and an admin API for tests (including a one-shot token tamper). Test data only.
//
// Configuration (environment, all optional) — see README.md:
//   PROFILE=psc|generic  RUN_DIR=<dir for keys and pid>
//   HOST=127.0.0.1 PORT=9080 REALM_PATH=/auth/realms/esante-wallet PUBLIC_URL=http://HOST:PORT
//   CLIENT_ID CLIENT_SECRET REDIRECT_URIS POST_LOGOUT_REDIRECT_URIS TOKEN_AUTH_METHOD
//   CLIENT_PUBLIC_KEY_FILE CLIENT_KEY_ID (with TOKEN_AUTH_METHOD=private_key_jwt)
//   TLS_CERT_FILE TLS_KEY_FILE (serve HTTPS; PUBLIC_URL=https://...)
//   ACR=eidas1|eidas0|none|<any>  LOGIN_MODE=auto|form|deny  DEFAULT_USER=<SubjectNameID>
//   USERINFO_FORMAT=jwt|json  PKCE_REQUIRED=0|1  AUTHZ_ALIAS=1|0  USERS_FILE=<json>
//   ACCESS_TOKEN_TTL=120 ID_TOKEN_TTL=120 REFRESH_TOKEN_TTL=1800 SESSION_TTL=36000
//   KEYS_FILE=run/jwks-PORT.json  ROTATE_KEYS_ON_START=0|1  MAX_OLD_KEYS=2  PID_FILE=run/psc-idp-PORT.pid

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import Provider from 'oidc-provider';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;

// ---------------------------------------------------------------------------------------------
// settings
// ---------------------------------------------------------------------------------------------
const PROFILE = (env.PROFILE || 'psc').toLowerCase();
if (!['psc', 'generic'].includes(PROFILE)) {
  console.error('PROFILE must be psc or generic');
  process.exit(2);
}
const PSC = PROFILE === 'psc';
const HOST = env.HOST || '127.0.0.1';
const PORT = Number(env.PORT || 9080);
if (!/^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/.test(HOST)) {
  console.error(`refusing to listen on non-loopback HOST=${HOST}`);
  process.exit(2);
}
const PUBLIC_URL = (env.PUBLIC_URL || `http://${HOST.includes(':') ? `[${HOST}]` : HOST}:${PORT}`).replace(/\/+$/, '');
const REALM_PATH = ('/' + (env.REALM_PATH || (PSC ? '/auth/realms/esante-wallet' : '/realms/clinic')).replace(/^\/+|\/+$/g, ''));
const ISSUER = PUBLIC_URL + REALM_PATH;
const OIDC = '/protocol/openid-connect'; // Keycloak-style endpoint prefix, as on PSC

const list = (v, dflt) => (v === undefined || v === '' ? dflt : v.split(/[\s,]+/).filter(Boolean));
const bool = (v, dflt) => (v === undefined || v === '' ? dflt : /^(1|true|yes|on)$/i.test(v));
const int = (v, dflt) => (v === undefined || v === '' ? dflt : Number.parseInt(v, 10));

const CLIENT = {
  client_id: env.CLIENT_ID || (PSC ? 'psc-test-client' : 'clinic-test-client'),
  client_secret: env.CLIENT_SECRET || (PSC ? 'psc-test-secret' : 'clinic-test-secret'),
  redirect_uris: list(env.REDIRECT_URIS, ['http://127.0.0.1:9089/callback']),
  post_logout_redirect_uris: list(env.POST_LOGOUT_REDIRECT_URIS, ['http://127.0.0.1:9089/logged-out']),
  token_endpoint_auth_method: env.TOKEN_AUTH_METHOD || 'client_secret_basic',
  userinfo_format: (env.USERINFO_FORMAT || (PSC ? 'jwt' : 'json')).toLowerCase(),
};
if (!['client_secret_basic', 'client_secret_post', 'private_key_jwt'].includes(CLIENT.token_endpoint_auth_method)) {
  console.error('TOKEN_AUTH_METHOD must be client_secret_basic, client_secret_post or private_key_jwt');
  process.exit(2);
}
// private_key_jwt: the client's public key (PEM, CLIENT_PUBLIC_KEY_FILE) is registered as its JWKS,
// and it has no secret at all.
if (CLIENT.token_endpoint_auth_method === 'private_key_jwt') {
  if (!env.CLIENT_PUBLIC_KEY_FILE) {
    console.error('TOKEN_AUTH_METHOD=private_key_jwt needs CLIENT_PUBLIC_KEY_FILE (the client\'s public key, PEM)');
    process.exit(2);
  }
  const pub = crypto.createPublicKey(fs.readFileSync(env.CLIENT_PUBLIC_KEY_FILE));
  CLIENT.jwks = { keys: [{ ...pub.export({ format: 'jwk' }), use: 'sig', ...(env.CLIENT_KEY_ID ? { kid: env.CLIENT_KEY_ID } : {}) }] };
  delete CLIENT.client_secret;
}
if (!['jwt', 'json'].includes(CLIENT.userinfo_format)) {
  console.error('USERINFO_FORMAT must be jwt or json');
  process.exit(2);
}

const TTL = {
  access: int(env.ACCESS_TOKEN_TTL, 120), // PSC access tokens observed at 120 s
  id: int(env.ID_TOKEN_TTL, 120),
  refresh: int(env.REFRESH_TOKEN_TTL, 1800),
  session: int(env.SESSION_TTL, 36000),
};
const PKCE_REQUIRED = bool(env.PKCE_REQUIRED, false);
const AUTHZ_ALIAS = bool(env.AUTHZ_ALIAS, PSC); // PSC's authorization endpoint is on another URL
const MAX_OLD_KEYS = int(env.MAX_OLD_KEYS, 2);
const RUN_DIR = path.resolve(HERE, env.RUN_DIR || 'run');
const KEYS_FILE = path.resolve(HERE, env.KEYS_FILE || path.join(RUN_DIR, `jwks-${PORT}.json`));
const PID_FILE = path.resolve(HERE, env.PID_FILE || path.join(RUN_DIR, `psc-idp-${PORT}.pid`));

const LOGIN_MODES = new Set(['auto', 'form', 'deny']);
const defaults = () => ({
  acr: env.ACR === undefined || env.ACR === '' ? (PSC ? 'eidas1' : 'none') : env.ACR,
  login_mode: env.LOGIN_MODE || 'auto',
  default_user: env.DEFAULT_USER || undefined, // resolved below
});

const log = (...args) => console.log(new Date().toISOString(), ...args);

// ---------------------------------------------------------------------------------------------
// PSC-shaped test accounts (plausible, fabricated values — not real professionals)
// ---------------------------------------------------------------------------------------------
const OID = {
  profession: '1.2.250.1.213.1.1.5.5', // suffix used by PSC in SubjectRole
  secteur: '1.2.250.1.71.4.2.4', // suffix used by PSC in Secteur_Activite
  psiLocale: '1.2.250.1.213.1.3.1.1',
  palier: 'APPPRIP3^1.2.250.1.213.1.5.1.1.1',
};
const SUB_PREFIX = 'f:7e3c1a52-9f0b-4d6e-8a21-5b4c3d2e1f00:'; // Keycloak-federated form, like PSC

function activity(a) {
  return {
    codeModeExercice: '', codeSecteurDactivite: '', codeSectionPharmacien: '', codeRole: '',
    codeGenreActivite: '', numeroSiretSite: '', numeroSirenSite: '', numeroFinessSite: '',
    numeroFinessetablissementJuridique: '', identifiantTechniqueDeLaStructure: '',
    raisonSocialeSite: '', enseigneCommercialeSite: '', complementDestinataire: '',
    complementPointGeographique: '', numeroVoie: '', indiceRepetitionVoie: '', codeTypeDeVoie: '',
    libelleVoie: '', mentionDistribution: '', bureauCedex: '', codePostal: '', codeCommune: '',
    codePays: '', telephone: '', telephone2: '', telecopie: '', adresseEMail: '',
    codeDepartement: '', ancienIdentifiantDeLaStructure: '', autoriteDenregistrement: '',
    ...a,
  };
}

function pscAccount(u) {
  const first = u.activities[0] || {};
  return {
    sub: u.sub || SUB_PREFIX + u.idNat,
    claims: {
      SubjectNameID: u.idNat,
      preferred_username: u.idNat,
      given_name: u.given_name,
      family_name: u.family_name,
      SubjectRefPro: {
        codeCivilite: u.codeCivilite || '',
        exercices: [{
          codeProfession: u.codeProfession,
          codeCategorieProfessionnelle: u.codeCategorieProfessionnelle || 'C',
          codeCiviliteDexercice: u.codeCiviliteDexercice || '',
          nomDexercice: u.family_name,
          prenomDexercice: u.given_name,
          codeTypeSavoirFaire: u.codeTypeSavoirFaire || '',
          codeSavoirFaire: u.codeSavoirFaire || '',
          activities: u.activities.map(activity),
        }],
      },
      SubjectRole: [`${u.codeProfession}^${OID.profession}`],
      SubjectOrganization: first.raisonSocialeSite || '',
      SubjectOrganizationID: first.identifiantTechniqueDeLaStructure || '',
      Secteur_Activite: first.codeSecteurDactivite ? `${first.codeSecteurDactivite}^${OID.secteur}` : '',
      Palier_Authentification: OID.palier,
      PSI_Locale: OID.psiLocale,
      Mode_Acces_Raison: '',
      Acces_Regulation_Medicale: 'FAUX',
      UITVersion: '1.0',
      authMode: u.authMode || 'CARD',
      otherIds: [{ identifiant: u.idNat, origine: 'RPPS', qualite: 1 }],
    },
  };
}

const BUILTIN_USERS = [
  {
    idNat: '810000000001', given_name: 'JEANNE', family_name: 'MEDECIN-TEST', label: 'Médecin (10), cabinet libéral SA07',
    codeCivilite: 'MME', codeCiviliteDexercice: 'DR', codeProfession: '10', codeTypeSavoirFaire: 'S', codeSavoirFaire: 'SM54',
    activities: [{
      codeModeExercice: 'L', codeSecteurDactivite: 'SA07', numeroFinessSite: '990000019',
      identifiantTechniqueDeLaStructure: 'R99000001', raisonSocialeSite: 'CABINET DR MEDECIN-TEST',
      numeroVoie: '1', codeTypeDeVoie: 'R', libelleVoie: 'DE L ESSAI', codePostal: '75009', bureauCedex: '75009 PARIS',
      autoriteDenregistrement: 'CNOM/CNOM/CNOM',
    }],
  },
  {
    idNat: '810000000002', given_name: 'PAUL', family_name: 'PHARMACIEN-TEST', label: 'Pharmacien (21), hôpital SA01',
    codeCivilite: 'M', codeCiviliteDexercice: 'M', codeProfession: '21',
    activities: [{
      codeModeExercice: 'S', codeSecteurDactivite: 'SA01', codeSectionPharmacien: 'H',
      numeroFinessSite: '990000027', numeroFinessetablissementJuridique: '990000001',
      identifiantTechniqueDeLaStructure: 'F990000027', raisonSocialeSite: 'CENTRE HOSPITALIER DE TEST',
      numeroVoie: '10', codeTypeDeVoie: 'R', libelleVoie: 'DES TESTS', codePostal: '69003', bureauCedex: '69003 LYON',
      autoriteDenregistrement: 'CNOP/CNOP/ARS',
    }],
  },
  {
    idNat: '810000000003', given_name: 'LUCIE', family_name: 'INFIRMIERE-TEST', label: 'Infirmière (60), libérale SA07',
    codeCivilite: 'MME', codeCiviliteDexercice: 'MME', codeProfession: '60',
    activities: [{
      codeModeExercice: 'L', codeSecteurDactivite: 'SA07', numeroFinessSite: '990000035',
      identifiantTechniqueDeLaStructure: 'R99000003', raisonSocialeSite: 'CABINET INFIRMIER TEST',
      numeroVoie: '3', codeTypeDeVoie: 'AV', libelleVoie: 'DU CONTROLE', codePostal: '33000', bureauCedex: '33000 BORDEAUX',
      autoriteDenregistrement: 'ONI/ONI/ONI',
    }],
  },
];

// PROFILE=generic: a practice's own provider (Keycloak/authentik-like accounts with groups).
// `idNat` holds the user name so that the login step, the picker and the admin API treat both
// profiles alike. dr.test has the name of the gateway tests' local account (name clash test).
const GENERIC_USERS = [
  { idNat: 'dr.house', given_name: 'Gregory', family_name: 'House', groups: ['radiology'], label: 'radiology' },
  { idNat: 'dr.test', given_name: 'Dana', family_name: 'Test', groups: ['radiology'], label: 'same name as the local test account' },
  { idNat: 'nurse.joy', given_name: 'Joy', family_name: 'Nurse', groups: ['front-desk'], label: 'no viewer group' },
];

function genericAccount(u) {
  // A stable UUID-shaped sub derived from the user name, like Keycloak's user ids.
  const h = crypto.createHash('sha256').update(`clinic:${u.idNat}`).digest('hex');
  return {
    sub: u.sub || `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`,
    claims: {
      preferred_username: u.idNat,
      name: `${u.given_name} ${u.family_name}`,
      given_name: u.given_name,
      family_name: u.family_name,
      email: u.email || `${u.idNat}@clinic.test`,
      email_verified: true,
      groups: u.groups || [],
    },
  };
}

function loadUsers() {
  if (!env.USERS_FILE) return PSC ? BUILTIN_USERS : GENERIC_USERS;
  const raw = JSON.parse(fs.readFileSync(path.resolve(HERE, env.USERS_FILE), 'utf8'));
  if (!Array.isArray(raw) || !raw.length) throw new Error('USERS_FILE must hold a non-empty JSON array');
  for (const u of raw) {
    for (const k of PSC ? ['idNat', 'given_name', 'family_name', 'codeProfession'] : ['idNat', 'given_name', 'family_name']) {
      if (typeof u[k] !== 'string' || !u[k]) throw new Error(`USERS_FILE: every user needs string ${k}`);
    }
    u.activities ||= [];
  }
  return raw;
}

const USERS = loadUsers();
const ACCOUNTS = new Map(); // sub -> account
const BY_ID = new Map(); // idNat / sub / RPPS -> account
for (const u of USERS) {
  const acct = { ...(PSC ? pscAccount(u) : genericAccount(u)), user: u };
  ACCOUNTS.set(acct.sub, acct);
  BY_ID.set(u.idNat, acct);
  BY_ID.set(acct.sub, acct);
  if (/^8\d{11}$/.test(u.idNat)) BY_ID.set(u.idNat.slice(1), acct); // bare RPPS (11 digits)
}
const findUser = (hint) => (hint ? BY_ID.get(String(hint).trim()) : undefined);

const config = defaults();
function validateConfig(c) {
  if (!LOGIN_MODES.has(c.login_mode)) throw new Error(`login_mode must be one of ${[...LOGIN_MODES].join('|')}`);
  if (c.default_user === undefined) c.default_user = USERS[0].idNat;
  if (!findUser(c.default_user)) throw new Error(`unknown default_user ${c.default_user}`);
  c.default_user = findUser(c.default_user).user.idNat;
  if (typeof c.acr !== 'string' || !/^[\w.:-]{1,64}$/.test(c.acr)) throw new Error('acr must be a short token (e.g. eidas1, eidas0, none)');
  return c;
}
validateConfig(config);
const acrClaim = (v) => (v === 'none' ? undefined : v);

// ---------------------------------------------------------------------------------------------
// storage shared by every Provider instance of this process (so rotating keys keeps sessions)
// Implements the documented oidc-provider adapter interface, in memory.
// ---------------------------------------------------------------------------------------------
const store = new Map(); // key -> { value, exp(ms epoch) | 0 }
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);
const sget = (k) => {
  const e = store.get(k);
  if (!e) return undefined;
  if (e.exp && e.exp <= Date.now()) { store.delete(k); return undefined; }
  return e.value;
};
const sset = (k, value, expiresIn) => store.set(k, { value, exp: expiresIn ? Date.now() + expiresIn * 1000 : 0 });
setInterval(() => {
  const now = Date.now();
  for (const [k, e] of store) if (e.exp && e.exp <= now) store.delete(k);
  for (const [k, e] of store) {
    if (k.startsWith('grant:')) {
      for (const member of e.value) if (!store.has(member)) e.value.delete(member);
      if (!e.value.size) store.delete(k);
    }
  }
}, 60_000).unref();

class SharedMemoryAdapter {
  constructor(name) { this.name = name; }

  key(id) { return `${this.name}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    if (this.name === 'Session') sset(`sessionUid:${payload.uid}`, id, expiresIn);
    if (GRANTABLE.has(this.name) && payload.grantId) {
      const gk = `grant:${payload.grantId}`;
      const members = sget(gk) || new Set();
      members.add(key);
      sset(gk, members);
    }
    if (payload.userCode) sset(`userCode:${payload.userCode}`, id, expiresIn);
    sset(key, payload, expiresIn);
  }

  async find(id) { return sget(this.key(id)); }

  async findByUid(uid) { const id = sget(`sessionUid:${uid}`); return id ? this.find(id) : undefined; }

  async findByUserCode(userCode) { const id = sget(`userCode:${userCode}`); return id ? this.find(id) : undefined; }

  async consume(id) { const p = sget(this.key(id)); if (p) p.consumed = Math.floor(Date.now() / 1000); }

  async destroy(id) { store.delete(this.key(id)); }

  async revokeByGrantId(grantId) {
    const gk = `grant:${grantId}`;
    for (const member of sget(gk) || []) store.delete(member);
    store.delete(gk);
  }
}

function clearSessions() {
  let n = 0;
  for (const k of [...store.keys()]) {
    if (k.startsWith('Session:')) n += 1;
    if (k.startsWith('Session:') || k.startsWith('sessionUid:') || k.startsWith('Interaction:')) store.delete(k);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// signing keys: persisted private JWKS, first key signs, the others stay published for verification
// ---------------------------------------------------------------------------------------------
function newSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
  return { ...privateKey.export({ format: 'jwk' }), kid: `${PROFILE}-test-${stamp}-${crypto.randomBytes(3).toString('hex')}`, alg: 'RS256', use: 'sig' };
}
function saveKeys(keys) {
  fs.mkdirSync(path.dirname(KEYS_FILE), { recursive: true });
  const tmp = `${KEYS_FILE}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ keys }, null, 1), { mode: 0o600 });
  fs.renameSync(tmp, KEYS_FILE);
}
function loadKeys() {
  try {
    const { keys } = JSON.parse(fs.readFileSync(KEYS_FILE, 'utf8'));
    if (Array.isArray(keys) && keys.length && keys.every((k) => k.kty === 'RSA' && k.d && k.kid)) return keys;
    log(`ignoring unusable ${KEYS_FILE}`);
  } catch (e) {
    if (e.code !== 'ENOENT') log(`cannot read ${KEYS_FILE}: ${e.message}`);
  }
  return undefined;
}
let signingKeys = loadKeys();
if (!signingKeys) { signingKeys = [newSigningKey()]; saveKeys(signingKeys); log(`generated signing key ${signingKeys[0].kid}`); }
if (bool(env.ROTATE_KEYS_ON_START, false)) {
  signingKeys = [newSigningKey(), ...signingKeys].slice(0, 1 + MAX_OLD_KEYS);
  saveKeys(signingKeys);
  log(`rotated on start, now signing with ${signingKeys[0].kid}`);
}
const keyInfo = () => ({ current: signingKeys[0].kid, published: signingKeys.map((k) => k.kid), file: KEYS_FILE });

// ---------------------------------------------------------------------------------------------
// oidc-provider configuration
// ---------------------------------------------------------------------------------------------
const COOKIE_KEYS = [crypto.randomBytes(32).toString('base64url')]; // stable for this process
const PSC_CLAIMS = [
  'SubjectNameID', 'preferred_username', 'given_name', 'family_name', 'SubjectRefPro', 'SubjectRole',
  'SubjectOrganization', 'SubjectOrganizationID', 'Secteur_Activite', 'Palier_Authentification', 'PSI_Locale',
  'Mode_Acces_Raison', 'Acces_Regulation_Medicale', 'UITVersion', 'authMode', 'otherIds',
];
const INTERACTION_PATH = `${REALM_PATH}/login-actions/`;

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const page = (title, body) => `<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>body{font-family:sans-serif;max-width:40em;margin:2em auto}
button{display:block;width:100%;margin:.4em 0;padding:.6em;font-size:1em;cursor:pointer}.muted{color:#666;font-size:.9em}</style></head>
<body><h1>${esc(title)}</h1>${body}<p class="muted">Pro Santé Connect — fournisseur d'identité de test (aucune vraie authentification)</p></body></html>`;

function providerConfiguration(jwks) {
  const client = {
    client_id: CLIENT.client_id,
    ...(CLIENT.jwks ? { jwks: CLIENT.jwks } : { client_secret: CLIENT.client_secret }),
    client_name: 'Gateway under test',
    redirect_uris: CLIENT.redirect_uris,
    post_logout_redirect_uris: CLIENT.post_logout_redirect_uris,
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_method: CLIENT.token_endpoint_auth_method,
    id_token_signed_response_alg: 'RS256',
    require_auth_time: true,
    ...(CLIENT.userinfo_format === 'jwt' ? { userinfo_signed_response_alg: 'RS256' } : {}),
  };

  return {
    adapter: SharedMemoryAdapter,
    clients: [client],
    jwks: { keys: jwks },
    cookies: { keys: COOKIE_KEYS, long: { httpOnly: true, sameSite: 'lax' }, short: { httpOnly: true, sameSite: 'lax' } },
    acrValues: ['eidas1', 'eidas2', 'eidas3'],
    scopes: ['openid', 'offline_access'],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    claims: PSC ? {
      acr: null, auth_time: null, sid: null, iss: null,
      openid: ['sub'],
      scope_all: PSC_CLAIMS,
    } : {
      acr: null, auth_time: null, sid: null, iss: null,
      openid: ['sub'],
      // groups as a Keycloak "groups" mapper adds it: with the profile scope (which the
      // gateway's default scopes bring) or its own scope
      profile: ['name', 'given_name', 'family_name', 'preferred_username', 'groups'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    extraParams: ['test_acr'], // optional per-request override of the issued acr (tests only)
    responseTypes: ['code'],
    pkce: { required: () => PKCE_REQUIRED },
    clientBasedCORS: () => false,
    // psc: profile claims only in userinfo, as with PSC; generic: in the ID token too, as
    // Keycloak does, so a gateway that does not call userinfo still sees them
    conformIdTokenClaims: PSC,
    routes: {
      authorization: `${OIDC}/auth`,
      token: `${OIDC}/token`,
      userinfo: `${OIDC}/userinfo`,
      jwks: `${OIDC}/certs`,
      end_session: `${OIDC}/logout`,
      introspection: `${OIDC}/token/introspect`,
      revocation: `${OIDC}/revoke`,
    },
    features: {
      devInteractions: { enabled: false },
      jwtUserinfo: { enabled: true },
      introspection: { enabled: true, allowedPolicy: async () => true },
      revocation: { enabled: true, allowedPolicy: async () => true },
      rpInitiatedLogout: {
        enabled: true,
        // PSC (Keycloak) logs out straight away when id_token_hint is valid: auto-submit the confirmation
        async logoutSource(ctx, form) {
          const yes = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
          ctx.body = page('Déconnexion', `${yes}<noscript><button type="submit" form="op.logoutForm">Se déconnecter</button></noscript>
<script>document.forms[0].submit()</script>`);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.body = page('Déconnecté', '<p id="psc-logged-out">Session terminée.</p>');
        },
      },
      pushedAuthorizationRequests: { enabled: false },
      resourceIndicators: { enabled: false },
      dPoP: { enabled: false },
    },
    ttl: {
      AccessToken: TTL.access,
      IdToken: TTL.id,
      AuthorizationCode: 60,
      RefreshToken: TTL.refresh,
      Interaction: 600,
      Session: TTL.session,
      Grant: TTL.session,
    },
    // Keycloak issues a refresh token with every code exchange (no offline_access needed)
    issueRefreshToken: async (ctx, c) => c.grantTypeAllowed('refresh_token'),
    interactions: { url: async (ctx, interaction) => `${INTERACTION_PATH}${interaction.uid}` },
    // Auto-consent: a PSC user never sees a consent screen. Grants every requested OIDC scope/claim.
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      if (!grant || grant.accountId !== oidc.session.accountId) {
        grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
      }
      const scopes = [...oidc.requestParamOIDCScopes].join(' ');
      if (scopes) grant.addOIDCScope(scopes);
      if (oidc.requestParamClaims.size) grant.addOIDCClaims([...oidc.requestParamClaims]);
      await grant.save();
      return grant;
    },
    async findAccount(ctx, sub) {
      const acct = ACCOUNTS.get(sub);
      if (!acct) return undefined;
      return { accountId: acct.sub, async claims() { return { sub: acct.sub, ...structuredClone(acct.claims) }; } };
    },
    async renderError(ctx, out, error) {
      ctx.type = 'html';
      ctx.body = page('Erreur', `<pre id="psc-error">${esc(JSON.stringify(out, null, 2))}</pre>`);
      log('renderError', out.error, out.error_description || '', error?.message || '');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// one-shot tamper (tests only): the NEXT token answer's ID token (or userinfo answer) gets claims
// changed and is re-signed, so a client's checks meet tokens from the real token endpoint
// ---------------------------------------------------------------------------------------------
const TAMPER_KEYS = new Set(['target', 'set', 'remove', 'shift', 'key', 'header', 'count', 'delay_ms']);
const tampers = []; // pending, applied in order, each to one answer of its target
let foreignKey; // a key that was never published: its signatures cannot verify

function parseTamper(body) {
  const t = {
    target: body.target || 'id_token',
    set: { ...(body.set || {}) },
    remove: body.remove || [],
    shift: body.shift || {},
    key: body.key || 'current',
    header: body.header || {},
    count: body.count === undefined ? 1 : Number(body.count),
    delay_ms: body.delay_ms === undefined ? 0 : Number(body.delay_ms), // answer late (token minted first)
  };
  // shorthand: {"iss": "..."} is {"set": {"iss": "..."}}
  for (const [k, v] of Object.entries(body)) if (!TAMPER_KEYS.has(k)) t.set[k] = v;
  if (!['id_token', 'userinfo'].includes(t.target)) throw new Error('target must be id_token or userinfo');
  if (!['current', 'foreign'].includes(t.key)) throw new Error('key must be current or foreign');
  if (!Array.isArray(t.remove) || !t.remove.every((k) => typeof k === 'string')) throw new Error('remove must be a list of claim names');
  if (!Object.values(t.shift).every(Number.isFinite)) throw new Error('shift must map claims to seconds');
  if (typeof t.header !== 'object' || Array.isArray(t.header)) throw new Error('header must be an object');
  if (!Number.isInteger(t.count) || t.count < 1) throw new Error('count must be a positive integer');
  if (!Number.isInteger(t.delay_ms) || t.delay_ms < 0 || t.delay_ms > 60000) throw new Error('delay_ms must be 0 to 60000');
  t.changes = Object.keys(t.set).length || t.remove.length || Object.keys(t.shift).length || t.key !== 'current' || Object.keys(t.header).length;
  if (!t.changes && !t.delay_ms) {
    throw new Error('nothing to tamper with: give claims to set, remove or shift, a header, key=foreign or delay_ms');
  }
  return t;
}

function tamperClaims(claims, t) {
  const out = { ...claims, ...t.set };
  for (const k of t.remove) delete out[k];
  for (const [k, secs] of Object.entries(t.shift)) out[k] = (typeof out[k] === 'number' ? out[k] : Math.floor(Date.now() / 1000)) + secs;
  return out;
}

function resignJwt(jwt, t) {
  const [h, p] = jwt.split('.');
  const header = { ...JSON.parse(Buffer.from(h, 'base64url').toString('utf8')), ...t.header };
  const payload = tamperClaims(JSON.parse(Buffer.from(p, 'base64url').toString('utf8')), t);
  let jwk = signingKeys[0];
  if (t.key === 'foreign') {
    foreignKey ||= newSigningKey();
    jwk = foreignKey; // header keeps the published kid: only the signature is wrong
  }
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  const key = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
  return `${input}.${crypto.sign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

// Returns how long to hold the answer back (ms).
function applyTamper(ctx) {
  const target = ctx.oidc.route === 'token' ? 'id_token' : 'userinfo';
  const i = tampers.findIndex((t) => t.target === target);
  if (i < 0) return 0;
  const t = tampers[i];
  if (target === 'id_token') {
    if (!ctx.body || typeof ctx.body.id_token !== 'string') return 0; // e.g. a refresh without one
    if (t.changes) ctx.body = { ...ctx.body, id_token: resignJwt(ctx.body.id_token, t) };
  } else if (typeof ctx.body === 'string') {
    if (t.changes) ctx.body = resignJwt(ctx.body, t);
    ctx.type = 'application/jwt; charset=utf-8';
  } else if (ctx.body && typeof ctx.body === 'object') {
    if (t.changes) ctx.body = tamperClaims(ctx.body, t); // JSON userinfo: no signature
  } else {
    return 0;
  }
  t.count -= 1;
  if (t.count <= 0) tampers.splice(i, 1);
  log(`tampered ${target}: set ${Object.keys(t.set).join(',') || '-'} remove ${t.remove.join(',') || '-'} shift ${Object.keys(t.shift).join(',') || '-'} key ${t.key} delay ${t.delay_ms}ms`);
  return t.delay_ms;
}

const ERROR_EVENTS = [
  'authorization.error', 'grant.error', 'userinfo.error', 'end_session.error', 'end_session_confirm.error',
  'introspection.error', 'revocation.error', 'jwks.error', 'discovery.error', 'server_error',
];

function buildProvider(keys) {
  const provider = new Provider(ISSUER, providerConfiguration(keys));
  // discovery: the wallet document advertises the authorization endpoint like PSC does (outside
  // the realm path); the standard path keeps the realm's own, so a test can tell which one a
  // client read. Token and userinfo answers go through the one-shot tamper (admin API).
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route === 'discovery' && ctx.body && typeof ctx.body === 'object' && AUTHZ_ALIAS && ctx.req.walletDiscovery) {
      ctx.body.authorization_endpoint = new URL('/auth', ctx.href).href;
    }
    if (ctx.status === 200 && (ctx.oidc?.route === 'token' || ctx.oidc?.route === 'userinfo')) {
      const delay = applyTamper(ctx);
      if (delay) await new Promise((resolve) => { setTimeout(resolve, delay); });
    }
  });
  for (const ev of ERROR_EVENTS) {
    provider.on(ev, (ctx, err) => {
      const e = err || ctx;
      log(`${ev}: ${e?.error || e?.name || ''} ${e?.error_description || e?.message || ''}${e?.error_detail ? ` (${e.error_detail})` : ''}`);
    });
  }
  provider.on('authorization.success', (ctx) => log(`authorization.success client=${ctx.oidc.client?.clientId} acr=${ctx.oidc.session?.acr ?? '(none)'}`));
  provider.on('grant.success', (ctx) => log(`grant.success client=${ctx.oidc.client?.clientId}`));
  provider.on('end_session.success', () => log('end_session.success'));
  return { provider, callback: provider.callback() };
}

let current = buildProvider(signingKeys);

function rotateKeys() {
  signingKeys = [newSigningKey(), ...signingKeys].slice(0, 1 + MAX_OLD_KEYS);
  saveKeys(signingKeys);
  current = buildProvider(signingKeys);
  log(`keys rotated: signing with ${signingKeys[0].kid}, published ${signingKeys.map((k) => k.kid).join(',')}`);
}
function retireOldKeys() {
  signingKeys = signingKeys.slice(0, 1);
  saveKeys(signingKeys);
  current = buildProvider(signingKeys);
  log(`old keys retired: published ${signingKeys[0].kid}`);
}

// ---------------------------------------------------------------------------------------------
// login interaction (no real e-CPS: auto-login, or a one-click user picker for tests)
// ---------------------------------------------------------------------------------------------
async function readBody(req, limit = 65536) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > limit) throw Object.assign(new Error('body too large'), { status: 413 });
    chunks.push(c);
  }
  const raw = Buffer.concat(chunks).toString('utf8');
  if (!raw) return {};
  if ((req.headers['content-type'] || '').includes('application/json')) return JSON.parse(raw);
  return Object.fromEntries(new URLSearchParams(raw));
}

function send(res, status, body, type = 'application/json; charset=utf-8', headers = {}) {
  const data = typeof body === 'string' ? body : JSON.stringify(body, null, 2);
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(data), ...headers });
  res.end(data);
}

async function handleInteraction(req, res) {
  const { provider } = current;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (e) {
    log(`interaction lookup failed: ${e.message}`);
    return send(res, 400, page('Session expirée', `<p id="psc-error">${esc(e.message)}</p>`), 'text/html; charset=utf-8');
  }
  const { prompt, params, uid } = details;

  if (prompt.name === 'consent') { // normally avoided by loadExistingGrant, kept for completeness
    const grant = details.grantId ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  if (prompt.name !== 'login') {
    return send(res, 400, page('Erreur', `<p id="psc-error">unsupported prompt ${esc(prompt.name)}</p>`), 'text/html; charset=utf-8');
  }

  let user;
  let acr = params.test_acr || config.acr;
  if (req.method === 'POST') {
    const body = await readBody(req);
    if (body.cancel) {
      log(`login cancelled by the test user (${uid})`);
      return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User cancelled the authentication' }, { mergeWithLastSubmission: false });
    }
    user = findUser(body.user);
    if (!user) return send(res, 400, page('Erreur', '<p id="psc-error">unknown user</p>'), 'text/html; charset=utf-8');
    if (body.acr) acr = body.acr;
  } else if (config.login_mode === 'deny') {
    log(`login denied (LOGIN_MODE=deny) for ${params.client_id}`);
    return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'authentication refused by the test identity provider' }, { mergeWithLastSubmission: false });
  } else {
    user = findUser(params.login_hint);
    if (!user && config.login_mode === 'auto') user = findUser(config.default_user);
  }

  if (!user) { // LOGIN_MODE=form: one-click picker (stable ids for headless browsers)
    const buttons = [...ACCOUNTS.values()].map((a) => `<button type="submit" id="psc-user-${esc(a.user.idNat)}" name="user" value="${esc(a.user.idNat)}">`
      + `${esc(a.user.given_name)} ${esc(a.user.family_name)} — ${esc(a.user.idNat)}${a.user.label ? ` — ${esc(a.user.label)}` : ''}</button>`).join('\n');
    return send(res, 200, page('Connexion Pro Santé Connect (test)', `<form id="psc-login" method="post" action="${esc(INTERACTION_PATH + uid)}">
<p>Choisissez un professionnel de test. ACR émis : <select name="acr" id="psc-acr">${['eidas1', 'eidas0', 'none'].concat(config.acr).filter((v, i, a) => a.indexOf(v) === i)
      .map((v) => `<option value="${esc(v)}"${v === acr ? ' selected' : ''}>${esc(v)}</option>`).join('')}</select></p>
${buttons}
<button type="submit" id="psc-cancel" name="cancel" value="1">Annuler</button></form>`), 'text/html; charset=utf-8');
  }

  const result = { login: { accountId: user.sub, acr: acrClaim(acr), remember: true } };
  log(`login ${user.user.idNat} acr=${acr} client=${params.client_id}`);
  return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

// ---------------------------------------------------------------------------------------------
// admin API for tests (loopback only, no authentication)
// ---------------------------------------------------------------------------------------------
function status() {
  return {
    issuer: ISSUER,
    discovery: PSC ? [`${ISSUER}/.well-known/wallet-openid-configuration`, `${ISSUER}/.well-known/openid-configuration`]
      : [`${ISSUER}/.well-known/openid-configuration`],
    authorization_endpoint_alias: AUTHZ_ALIAS ? `${PUBLIC_URL}/auth` : null,
    config: { ...config },
    clients: [{
      client_id: CLIENT.client_id,
      client_secret: CLIENT.client_secret,
      redirect_uris: CLIENT.redirect_uris,
      post_logout_redirect_uris: CLIENT.post_logout_redirect_uris,
      token_endpoint_auth_method: CLIENT.token_endpoint_auth_method,
      userinfo: CLIENT.userinfo_format === 'jwt' ? 'application/jwt (RS256)' : 'application/json',
      pkce_required: PKCE_REQUIRED,
    }],
    ttl: TTL,
    keys: keyInfo(),
    profile: PROFILE,
    users: [...ACCOUNTS.values()].map((a) => (PSC
      ? { SubjectNameID: a.user.idNat, sub: a.sub, given_name: a.user.given_name, family_name: a.user.family_name, codeProfession: a.user.codeProfession }
      : { preferred_username: a.user.idNat, sub: a.sub, groups: a.user.groups || [] })),
    versions: { node: process.version, 'oidc-provider': PKG_VERSION },
    pending_tampers: tampers,
    pid: process.pid,
  };
}

async function handleAdmin(req, res, url) {
  const route = url.pathname.replace(/\/+$/, '');
  const post = req.method === 'POST';
  if (route === '/admin/status' && req.method === 'GET') return send(res, 200, status());
  if (!post) return send(res, 405, { error: 'use POST (GET only for /admin/status)' }, undefined, { Allow: 'POST' });
  const body = { ...Object.fromEntries(url.searchParams), ...(await readBody(req)) };
  switch (route) {
    case '/admin/config': {
      const next = body.reset ? defaults() : { ...config };
      for (const k of ['acr', 'login_mode', 'default_user']) if (body[k] !== undefined && body[k] !== '') next[k] = String(body[k]);
      try { validateConfig(next); } catch (e) { return send(res, 400, { error: e.message }); }
      Object.assign(config, next);
      const cleared = bool(String(body.clear_sessions ?? ''), false) ? clearSessions() : 0;
      log(`config ${JSON.stringify(config)}${cleared ? ` (cleared ${cleared} sessions)` : ''}`);
      return send(res, 200, { config, cleared_sessions: cleared });
    }
    case '/admin/sessions/clear': {
      const n = clearSessions();
      log(`cleared ${n} sessions`);
      return send(res, 200, { cleared_sessions: n });
    }
    case '/admin/keys/rotate':
      rotateKeys();
      return send(res, 200, keyInfo());
    case '/admin/keys/retire':
      retireOldKeys();
      return send(res, 200, keyInfo());
    case '/admin/tamper': {
      if (body.clear) {
        const n = tampers.splice(0).length;
        return send(res, 200, { cleared: n });
      }
      try { tampers.push(parseTamper(body)); } catch (e) { return send(res, 400, { error: e.message }); }
      log(`tamper queued: ${JSON.stringify(tampers.at(-1))}`);
      return send(res, 200, { pending: tampers });
    }
    default:
      return send(res, 404, { error: 'unknown admin route', routes: ['GET /admin/status', 'POST /admin/config', 'POST /admin/sessions/clear', 'POST /admin/keys/rotate', 'POST /admin/keys/retire', 'POST /admin/tamper'] });
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP front: routes the realm path into oidc-provider (mounted like Express would), the rest here
// ---------------------------------------------------------------------------------------------
const PKG_VERSION = JSON.parse(fs.readFileSync(path.join(HERE, 'node_modules/oidc-provider/package.json'), 'utf8')).version;

function mount(req, res, innerUrl) {
  req.originalUrl = REALM_PATH + innerUrl;
  req.url = innerUrl;
  return current.callback(req, res);
}

// TLS_CERT_FILE and TLS_KEY_FILE (PEM): serve HTTPS, as a practice's own provider behind its
// private authority does (set PUBLIC_URL to the https:// origin too).
const tlsOptions = env.TLS_CERT_FILE
  ? { cert: fs.readFileSync(env.TLS_CERT_FILE), key: fs.readFileSync(env.TLS_KEY_FILE) }
  : null;
const server = (tlsOptions ? (handler) => https.createServer(tlsOptions, handler) : http.createServer)(async (req, res) => {
  const started = Date.now();
  const logLine = `${req.method} ${req.url.split('?')[0]}`; // before mount() rewrites req.url
  res.on('finish', () => log(`${logLine} ${res.statusCode} ${Date.now() - started}ms`));
  try {
    const url = new URL(req.url, PUBLIC_URL);
    const p = url.pathname;
    if (p === '/' || p === '') {
      return send(res, 200, { service: `Vigie's test OpenID provider, profile ${PROFILE} (loopback only)`, ...status(), clients: undefined });
    }
    if (AUTHZ_ALIAS && (p === '/auth' || p === '/auth/')) { // PSC: authorization endpoint on its own URL
      res.writeHead(302, { Location: `${REALM_PATH}${OIDC}/auth${url.search}`, 'Cache-Control': 'no-store', 'Content-Length': 0 });
      return res.end();
    }
    if (p.startsWith('/admin/')) return await handleAdmin(req, res, url);
    if (PSC && p === `${REALM_PATH}/.well-known/wallet-openid-configuration`) {
      req.walletDiscovery = true; // read by the discovery middleware in buildProvider
      return mount(req, res, `/.well-known/openid-configuration${url.search}`);
    }
    if (p.startsWith(INTERACTION_PATH) && p.length > INTERACTION_PATH.length && ['GET', 'POST'].includes(req.method)) {
      return await handleInteraction(req, res);
    }
    if (p === REALM_PATH || p.startsWith(`${REALM_PATH}/`)) {
      const inner = req.url.slice(REALM_PATH.length);
      return mount(req, res, inner.startsWith('/') ? inner : `/${inner}`);
    }
    return send(res, 404, { error: 'not_found', hint: `OIDC issuer is ${ISSUER}` });
  } catch (e) {
    log(`error ${req.method} ${req.url}: ${e.stack || e}`);
    if (!res.headersSent) send(res, e.status || 500, { error: e.status ? e.message : 'server_error' });
    else res.destroy();
  }
});

function writePid() {
  fs.mkdirSync(path.dirname(PID_FILE), { recursive: true });
  fs.writeFileSync(PID_FILE, `${process.pid}\n`);
}
function removePid() {
  try { if (fs.readFileSync(PID_FILE, 'utf8').trim() === String(process.pid)) fs.unlinkSync(PID_FILE); } catch { /* gone */ }
}
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => { log(`${sig}, stopping`); removePid(); server.close(); setTimeout(() => process.exit(0), 500).unref(); });
}
process.on('exit', removePid);

server.on('error', (e) => { console.error(`listen ${HOST}:${PORT} failed: ${e.message}`); process.exit(1); });
server.listen(PORT, HOST, () => {
  writePid();
  log(`Vigie test IdP (oidc-provider ${PKG_VERSION}, node ${process.version}) pid ${process.pid}`);
  log(`issuer ${ISSUER}`);
  log(`profile ${PROFILE}, discovery ${ISSUER}/.well-known/${PSC ? 'wallet-' : ''}openid-configuration`);
  log(`client ${CLIENT.client_id} redirect_uris=${CLIENT.redirect_uris.join(' ')} acr=${config.acr} login_mode=${config.login_mode} signing kid=${signingKeys[0].kid}`);
});
