// Makes an RSA key pair for a test's own JWKS, with npm's jose:
//
//   node make-key.mjs --kid KID [--jwk JSON]
//
// Prints {"kid", "private_pem", "jwk"}: the form forge-jwt.mjs --key reads
// (kid, private_pem), and the public JWK (alg RS256, use sig, the kid, and
// any members --jwk adds or replaces, such as key_ops) to put in a JWKS.
//
// Exit status: 0, 2 for bad usage.

import { parseArgs } from 'node:util';
import { exportJWK, exportPKCS8, generateKeyPair } from 'jose';

let values;
try {
  ({ values } = parseArgs({ options: { kid: { type: 'string' }, jwk: { type: 'string' } } }));
} catch (e) {
  console.error(`make-key: ${e.message}`);
  process.exit(2);
}
if (!values.kid) {
  console.error('usage: make-key.mjs --kid KID [--jwk JSON]');
  process.exit(2);
}
let extra = {};
if (values.jwk) {
  try { extra = JSON.parse(values.jwk); } catch {
    console.error('make-key: --jwk is not JSON');
    process.exit(2);
  }
}

const { publicKey, privateKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
const jwk = { ...(await exportJWK(publicKey)), alg: 'RS256', use: 'sig', kid: values.kid, ...extra };
console.log(JSON.stringify({ kid: values.kid, private_pem: await exportPKCS8(privateKey), jwk }));
