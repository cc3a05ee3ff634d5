// Verifies a JWT with npm's jose, a JOSE library no one on this project
// wrote, the way Stytch's own documentation uses it.
//
//   node verify-jwt.mjs --jwks URL|FILE [--iss ISS] [--aud AUD] [--alg ALG]
//                       [--sub SUB] [--now EPOCH] [--clock-tolerance S] TOKEN
//
// --now checks exp and nbf at that time instead of now (e.g. the time a
// request was sent, to check what nginx handed its upstream then);
// --clock-tolerance allows that many seconds on exp and nbf.
//
// Prints {"header":...,"payload":...} and exits 0 when the token verifies,
// prints the reason to stderr and exits 1 otherwise.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify } from 'jose';

const { values, positionals } = parseArgs({
  options: {
    jwks: { type: 'string' },
    iss: { type: 'string' },
    aud: { type: 'string' },
    alg: { type: 'string' },
    sub: { type: 'string' },
    now: { type: 'string' },
    'clock-tolerance': { type: 'string' },
  },
  allowPositionals: true,
});

const token = (positionals[0] || '').trim();

if (!values.jwks || !token) {
  console.error('usage: verify-jwt.mjs --jwks URL|FILE [--iss] [--aud] [--alg] TOKEN');
  process.exit(2);
}

const keys = /^https?:/.test(values.jwks)
  ? createRemoteJWKSet(new URL(values.jwks))
  : createLocalJWKSet(JSON.parse(readFileSync(values.jwks, 'utf8')));

const options = {};
if (values.iss) options.issuer = values.iss;
if (values.aud) options.audience = values.aud;
if (values.alg) options.algorithms = [values.alg];
if (values.sub) options.subject = values.sub;
if (values.now) options.currentDate = new Date(Number(values.now) * 1000);
if (values['clock-tolerance']) options.clockTolerance = Number(values['clock-tolerance']);

try {
  const { payload, protectedHeader } = await jwtVerify(token, keys, options);
  console.log(JSON.stringify({ header: protectedHeader, payload }));
} catch (e) {
  console.error(`${e.code || e.name}: ${e.message}`);
  process.exit(1);
}
