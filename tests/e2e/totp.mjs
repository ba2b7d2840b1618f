// TOTP codes for the browser tests, so that a test can type the code a phone's authenticator app
// would show. They come from Vigie's own implementation through the cargo example
// examples/totp.rs (VIGIE_TOTP_BIN; scripts/lib.sh's totp_tool builds it): one implementation of
// RFC 6238 in the project, not one per language. Shared by signin.mjs and viewer.mjs.

import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(process.env.VIGIE_TOTP_BIN || path.join(HERE, '../../target/debug/examples/totp'));

/** The codes at now + 30 s × each offset (or at `at` Unix seconds). The secret goes through
 *  standard input: never on a command line, which `ps` shows. */
export function codes(secret, offsets = [0], at = undefined) {
  const args = at === undefined ? [] : ['--at', String(at)];
  let out;
  try {
    out = execFileSync(BIN, [...args, ...offsets.map(String)], { input: `${secret}\n`, encoding: 'utf8', timeout: 10_000 });
  } catch (e) {
    throw new Error(`the TOTP helper ${BIN} failed (cargo build --example totp, or set VIGIE_TOTP_BIN): ${e.message}`);
  }
  return out.trim().split('\n');
}

/** The code shown now, or `offset` steps of 30 s away. */
export const totpNow = (secret, offset = 0) => codes(secret, [offset])[0];

/** A code that matches no step the server could accept now (it allows one step either side). */
export function wrongCode(secret) {
  const near = codes(secret, [-2, -1, 0, 1, 2]);
  let n = (Number(near[2]) + 500_000) % 1_000_000;
  while (near.includes(String(n).padStart(6, '0'))) n = (n + 1) % 1_000_000;
  return String(n).padStart(6, '0');
}

/** Throws unless the helper gives RFC 6238 appendix B's value (T = 59 s, 6 digits): the right
 *  tool is at VIGIE_TOTP_BIN and it answers. */
export function selfCheck() {
  // base32("12345678901234567890"): RFC 6238's SHA-1 test key.
  if (codes('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', [0], 59)[0] !== '287082') throw new Error(`TOTP self-check of ${BIN} failed`);
}
