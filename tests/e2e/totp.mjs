// TOTP for the browser tests (RFC 6238: HMAC-SHA-1, 6 digits, 30 s steps), so that a test can
// type the code a phone's authenticator app would show. Shared by signin.mjs and viewer.mjs.

import { createHmac } from 'node:crypto';

/** Decodes RFC 4648 base32 (upper or lower case, spaces and padding ignored). */
export function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/[\s=]/g, '').toUpperCase()) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error(`not base32: ${c}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 4226 HOTP, 6 digits. */
export function hotp(key, counter) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', key).update(msg).digest();
  const off = mac[mac.length - 1] & 0x0f;
  const bin = mac.readUInt32BE(off) & 0x7fffffff;
  return String(bin % 1_000_000).padStart(6, '0');
}

/** The code shown at `unixSeconds`. */
export const totpAt = (key, unixSeconds) => hotp(key, Math.floor(unixSeconds / 30));

/** A code that matches no step the server could accept now (it allows one step either side). */
export function wrongCode(key, unixSeconds) {
  const near = new Set([-2, -1, 0, 1, 2].map((d) => totpAt(key, unixSeconds + d * 30)));
  let n = (Number(totpAt(key, unixSeconds)) + 500_000) % 1_000_000;
  while (near.has(String(n).padStart(6, '0'))) n = (n + 1) % 1_000_000;
  return String(n).padStart(6, '0');
}

/** Throws unless the implementation gives RFC 6238 appendix B's value (T = 59 s, 6 digits). */
export function selfCheck() {
  if (totpAt(Buffer.from('12345678901234567890'), 59) !== '287082') throw new Error('TOTP self-check failed');
}
