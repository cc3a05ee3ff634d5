// Writes the seeds of fuzz_verify: Stytch-shaped session JWTs made with
// npm's jose and signed with the RS256 key of fuzz/fixed_keys.h (kid
// "fuzz-k1", the key set the harness trusts), JWKS documents, and claims
// sets for the modes in which the harness signs.  Byte 0 of each seed is
// the harness's mode and flags (see fuzz_verify.c).
//
//   node fuzz/tools/verify-seeds.mjs fuzz/corpus/fuzz_verify
//
// Needs `npm ci` in t/tools.  The seeds are committed; rerun only to
// refresh them.  Times match the harness's fixed "now" (1800000060).
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const require = createRequire(new URL('../../t/tools/package.json', import.meta.url));
const jose = await import(pathToFileURL(require.resolve('jose')).href);
const { CompactSign, UnsecuredJWT, exportJWK, generateKeyPair,
        importPKCS8 } = jose;

const out = process.argv[2];
if (!out) throw new Error('usage: verify-seeds.mjs DIR');
mkdirSync(out, { recursive: true });

// the PEM of fixed_key_rsa, out of its C string literal
const header = readFileSync(new URL('../fixed_keys.h', import.meta.url), 'utf8');
const literal = header.split('fixed_key_rsa[] =')[1].split(';')[0];
const pem = [...literal.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('').replace(/\\n/g, '\n');
const key = await importPKCS8(pem, 'RS256', { extractable: true });
const pub = await exportJWK(key);
const jwk = { kty: 'RSA', n: pub.n, e: pub.e, kid: 'fuzz-k1', alg: 'RS256', use: 'sig' };

const PROJECT = 'project-test-fuzz';
const NOW = 1800000060;
const MODE_TOKEN = 0, MODE_JWKS = 1, MODE_CLAIMS = 2, MODE_BOTH = 3;
const EXPECT = 4, CLAIM_ONLY = 8;

const claims = (over = {}) => {
  const c = {
    aud: [PROJECT], exp: NOW + 240, iat: NOW - 60, nbf: NOW - 60,
    iss: `stytch.com/${PROJECT}`, sub: 'user-test-fuzz',
    'https://stytch.com/session': {
      id: 'session-test-fuzz', started_at: '2027-01-15T08:00:00Z',
      authentication_factors: [{ type: 'trusted_auth_token',
        trusted_auth_token_factor: { token_id: 'jti-fuzz' } }],
      roles: ['stytch_user'],
    },
    tat_identity: 'sha256:fuzz',
  };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete c[k]; else c[k] = v;
  }
  return c;
};

const enc = (s) => new TextEncoder().encode(s);
const sign = (c, h = {}, k = key) => new CompactSign(enc(typeof c === 'string' ? c : JSON.stringify(c)))
  .setProtectedHeader({ alg: 'RS256', kid: 'fuzz-k1', typ: 'JWT', ...h }).sign(k);

const seed = (name, flags, ...parts) => {
  const bufs = [Buffer.from([flags])];
  parts.forEach((p, i) => {
    if (i > 0) bufs.push(Buffer.from([0xff]));
    bufs.push(Buffer.from(p));
  });
  writeFileSync(join(out, name), Buffer.concat(bufs));
};

const valid = await sign(claims());

// mode 0: tokens against the fixed key set
seed('token-valid', MODE_TOKEN | EXPECT, valid);
seed('token-valid-no-binding', MODE_TOKEN, valid);
seed('token-valid-claim-only', MODE_TOKEN | CLAIM_ONLY, valid);
seed('token-b2b', MODE_TOKEN | EXPECT, await sign(claims({
  sub: 'member-test-fuzz',
  'https://stytch.com/organization': { organization_id: 'organization-test-fuzz', slug: 'acme' },
})));
seed('token-aud-string', MODE_TOKEN | EXPECT, await sign(claims({ aud: PROJECT })));
seed('token-expired', MODE_TOKEN | EXPECT, await sign(claims({ exp: NOW - 30 })));
seed('token-not-yet-valid', MODE_TOKEN | EXPECT, await sign(claims({ nbf: NOW + 31 })));
seed('token-wrong-iss', MODE_TOKEN | EXPECT, await sign(claims({ iss: 'stytch.com/other' })));
seed('token-wrong-binding', MODE_TOKEN | EXPECT, await sign(claims({ tat_identity: 'x' })));
seed('token-unknown-kid', MODE_TOKEN | EXPECT, await sign(claims(), { kid: 'other' }));
seed('token-alg-none', MODE_TOKEN | EXPECT, new UnsecuredJWT(claims()).encode());
seed('token-hs256-pem', MODE_TOKEN | EXPECT, await new CompactSign(enc(JSON.stringify(claims())))
  .setProtectedHeader({ alg: 'HS256', kid: 'fuzz-k1' }).sign(enc(pem)));
seed('token-bad-signature', MODE_TOKEN | EXPECT, `${valid.slice(0, -6)}AAAAAA`);
seed('token-two-parts', MODE_TOKEN, valid.split('.').slice(0, 2).join('.'));
seed('token-padded', MODE_TOKEN, `${valid}==`);

// mode 1: a JWKS document, then a token
const other = await generateKeyPair('ES256', { extractable: true });
const ec = { ...(await exportJWK(other.publicKey)), kid: 'ec', alg: 'ES256', use: 'sig' };
seed('jwks-stytch-shaped', MODE_JWKS | EXPECT, JSON.stringify({ keys: [jwk, ec] }), valid);
seed('jwks-rotation', MODE_JWKS | EXPECT,
     JSON.stringify({ keys: [{ ...jwk, kid: 'old' }, jwk] }), valid);
seed('jwks-no-alg-use', MODE_JWKS, JSON.stringify({ keys: [{ kty: 'RSA', kid: 'fuzz-k1', n: jwk.n, e: jwk.e }] }),
     valid);
seed('jwks-empty', MODE_JWKS, '{"keys":[]}', valid);
seed('jwks-not-json', MODE_JWKS, '{"keys":[', valid);

// modes 2 and 3: claims (and headers) that the harness signs
seed('claims-valid', MODE_CLAIMS | EXPECT, JSON.stringify(claims()));
seed('claims-no-session', MODE_CLAIMS | EXPECT, JSON.stringify(claims({ 'https://stytch.com/session': undefined })));
seed('claims-aud-array', MODE_CLAIMS | EXPECT, JSON.stringify(claims({ aud: ['a', 1, null, PROJECT] })));
seed('claims-exp-fraction', MODE_CLAIMS | EXPECT, JSON.stringify(claims({ exp: NOW + 0.5 })));
seed('claims-binding-object', MODE_CLAIMS | CLAIM_ONLY, JSON.stringify(claims({ tat_identity: { a: [1] } })));
seed('claims-duplicate', MODE_CLAIMS | EXPECT, JSON.stringify(claims()).replace(/}$/, ',"sub":"x"}'));
seed('claims-deep', MODE_CLAIMS | EXPECT,
     JSON.stringify(claims()).replace(/}$/, `,"d":${'['.repeat(16)}${']'.repeat(16)}}`));
seed('claims-not-json', MODE_CLAIMS | EXPECT, '{"sub":');
seed('both-crit', MODE_BOTH | EXPECT, '{"alg":"RS256","kid":"fuzz-k1","crit":["b64"],"b64":false}',
     JSON.stringify(claims()));
seed('both-alg-none', MODE_BOTH | EXPECT, '{"alg":"none","kid":"fuzz-k1"}', JSON.stringify(claims()));
seed('both-kid-number', MODE_BOTH | EXPECT, '{"alg":"RS256","kid":7}', JSON.stringify(claims()));
seed('both-valid', MODE_BOTH | EXPECT, '{"alg":"RS256","kid":"fuzz-k1"}', JSON.stringify(claims()));

console.log(`seeds written to ${out}`);
