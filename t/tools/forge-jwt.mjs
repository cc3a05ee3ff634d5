// Makes Stytch session JWTs, good and bad, with npm's jose (a JOSE library
// no one on this project wrote), for the tests of the module's verifier.
//
//   node forge-jwt.mjs (--key DIR/project-key.json | --jwks FILE|URL)
//                      --project PROJECT_ID [--kind KIND | --all]
//                      [--sub USER_ID] [--session-id ID] [--claims JSON]
//                      [--now EPOCH] [--lifetime SECONDS] [--kid KID]
//                      [--other-sub USER_ID] [--binding VALUE] [--count N]
//
// --key: the emulator's DIR/project-key.json ({"kid","private_pem"}, the
//   key that signs its session JWTs): every kind can be made.
// --jwks: only the project's public keys (a file, or a URL: give
//   NODE_EXTRA_CA_CERTS for the emulator's CA): only the kinds that need no
//   private key (bad_signature, unknown_kid, alg_none, hs256_pubkey,
//   malformed_*, and oversized_unsigned).
// --kind prints one token (--count N: N of them, one a line, each with its
// own random kid, sub or padding where the kind has one); --all prints {"kind": token, ...} for every kind
// the key material allows, and "claims": the claims of "valid".
//
// Kinds (the reason the module is expected to log, see t/050-verify.t):
//   valid              signed with the project key, Stytch's claims
//   bad_signature      the project's kid, signed with another RSA key (signature)
//   unknown_kid        another RSA key and a kid the JWKS does not have (unknown_kid)
//   alg_none           jose's UnsecuredJWT: {"alg":"none"}, no signature (alg)
//   hs256_pubkey       HS256, the project's public key (SPKI PEM) as the
//                      HMAC secret: the algorithm confusion attack (alg)
//   wrong_iss          iss stytch.com/<another project> (iss)
//   wrong_aud          aud [<another project>] (aud)
//   expired            exp 1000 s ago, beyond any leeway (expired)
//   not_yet_valid      nbf 1000 s ahead, beyond any leeway (not_yet_valid)
//   malformed_base64   the header part with characters outside base64url (malformed)
//   malformed_json     a validly signed payload that is not JSON (malformed)
//   malformed_header   a header part that is base64url of broken JSON (malformed)
//   oversized          valid, but over 8192 bytes (too_big)
//   oversized_unsigned over 8192 bytes of dots and letters, no key needed (too_big)
//   other_user         valid, for --other-sub with binding claim
//                      stytch_tat_identity = --binding (both random by default)
//   new_kid            like valid, but with --kid in the header: for a key
//                      the project has rotated to (give --key of that key)
//   no_typ             like valid, without "typ" in the header (typ)
//   typ_other          like valid, with "typ": "at+jwt" (typ)
//   iat_string         like valid, with iat a string of digits (malformed)
//
// Exit status: 0, 2 for bad usage.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { randomUUID, randomBytes, createPrivateKey, createPublicKey } from 'node:crypto';
import {
  SignJWT, UnsecuredJWT, CompactSign, generateKeyPair, base64url,
} from 'jose';

const usage = (msg) => {
  if (msg) console.error(`forge-jwt: ${msg}`);
  console.error('usage: forge-jwt.mjs (--key FILE | --jwks FILE|URL) --project ID (--kind KIND | --all) '
    + '[--sub] [--session-id] [--claims JSON] [--now] [--lifetime] [--kid] [--other-sub] [--binding]');
  process.exit(2);
};

let values;
try {
  ({ values } = parseArgs({
    options: {
      key: { type: 'string' },
      jwks: { type: 'string' },
      project: { type: 'string' },
      kind: { type: 'string' },
      all: { type: 'boolean' },
      sub: { type: 'string' },
      'session-id': { type: 'string' },
      claims: { type: 'string' },
      now: { type: 'string' },
      lifetime: { type: 'string' },
      kid: { type: 'string' },
      'other-sub': { type: 'string' },
      binding: { type: 'string' },
      count: { type: 'string' },
    },
  }));
} catch (e) {
  usage(e.message);
}

if (!values.project) usage('--project is required');
if (!values.key === !values.jwks) usage('give one of --key and --jwks');
if (!values.kind === !values.all) usage('give one of --kind and --all');

const project = values.project;
const now = values.now !== undefined ? Number(values.now) : Math.floor(Date.now() / 1000);
const lifetime = values.lifetime !== undefined ? Number(values.lifetime) : 300;
if (!Number.isInteger(now) || !Number.isInteger(lifetime)) usage('--now and --lifetime are integers');
let extra = {};
if (values.claims) {
  try { extra = JSON.parse(values.claims); } catch { usage('--claims is not JSON'); }
}

// the project's keys: a private key and its kid, or the public keys of a JWKS
let priv; let pub; let kid;
if (values.key) {
  const saved = JSON.parse(readFileSync(values.key, 'utf8'));
  priv = createPrivateKey(saved.private_pem);
  pub = createPublicKey(priv);
  kid = saved.kid;
} else {
  const text = /^https?:/.test(values.jwks)
    ? await (await fetch(values.jwks)).text()
    : readFileSync(values.jwks, 'utf8');
  const jwk = JSON.parse(text).keys.find((k) => k.kty === 'RSA');
  if (!jwk) usage('no RSA key in the JWKS');
  kid = jwk.kid;
  pub = createPublicKey({ key: { kty: jwk.kty, n: jwk.n, e: jwk.e }, format: 'jwk' });
}
const headerKid = values.kid ?? kid;

const iso = (s) => new Date(s * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
const sub = values.sub ?? `user-test-${randomUUID()}`;
const sessionId = values['session-id'] ?? `session-test-${randomUUID()}`;

// the claims Stytch puts in a consumer session JWT (the emulator's shape)
function stytchClaims(user, session, more = {}) {
  return {
    ...more,
    'https://stytch.com/session': {
      id: session,
      started_at: iso(now - 60),
      last_accessed_at: iso(now),
      expires_at: iso(now + 3600),
      attributes: { ip_address: '', user_agent: '' },
      authentication_factors: [{
        type: 'trusted_auth_token', delivery_method: 'trusted_token_exchange',
        last_authenticated_at: iso(now - 60), created_at: iso(now - 60), updated_at: iso(now - 60),
        trusted_auth_token_factor: { token_id: randomUUID() },
      }],
      roles: ['stytch_user'],
    },
  };
}

async function signed(key, {
  alg = 'RS256', k = headerKid, iss = `stytch.com/${project}`, aud = [project], user = sub,
  session = sessionId, iat = now, nbf = now, exp = now + lifetime, more = extra, typ = 'JWT',
} = {}) {
  const header = { alg };
  if (typ !== null) header.typ = typ;
  if (k !== null) header.kid = k;
  return new SignJWT(stytchClaims(user, session, more))
    .setProtectedHeader(header)
    .setIssuer(iss)
    .setAudience(aud)
    .setSubject(user)
    .setIssuedAt(iat)
    .setNotBefore(nbf)
    .setExpirationTime(exp)
    .sign(key);
}

// a key that is not the project's (one per run: RSA key generation is slow)
let other;
const otherKey = async () => {
  other ??= (await generateKeyPair('RS256', { extractable: true })).privateKey;
  return other;
};
const enc = (obj) => base64url.encode(typeof obj === 'string' ? obj : JSON.stringify(obj));
const otherProject = 'project-test-ffffffff-ffff-ffff-ffff-ffffffffffff';

const makers = {
  // kinds that need only the public keys
  bad_signature: async () => signed(await otherKey(), { k: kid }),
  unknown_kid: async () => signed(await otherKey(), { k: values.kid ?? `jwk-test-unknown-${randomUUID()}` }),
  alg_none: async () => new UnsecuredJWT(stytchClaims(sub, sessionId, extra))
    .setIssuer(`stytch.com/${project}`).setAudience([project]).setSubject(sub)
    .setIssuedAt(now).setNotBefore(now).setExpirationTime(now + lifetime).encode(),
  hs256_pubkey: async () => signed(new TextEncoder().encode(pub.export({ type: 'spki', format: 'pem' })),
    { alg: 'HS256' }),
  malformed_base64: async () => {
    const [, p, s] = (await signed(await otherKey())).split('.');
    return `${enc({ alg: 'RS256', kid: headerKid, typ: 'JWT' }).slice(0, 10)}*%!${enc({ x: 1 }).slice(0, 4)}.${p}.${s}`;
  },
  malformed_header: async () => {
    const [, p, s] = (await signed(await otherKey())).split('.');
    return `${enc(`{"alg":"RS256","kid":${JSON.stringify(headerKid)},"typ":"JWT"`)}.${p}.${s}`;
  },
  oversized_unsigned: async () => `${enc({ alg: 'RS256', kid: headerKid, typ: 'JWT' })}.${'A'.repeat(9000)}.${'B'.repeat(342)}`,
};
if (priv) {
  Object.assign(makers, {
    valid: async () => signed(priv),
    wrong_iss: async () => signed(priv, { iss: `stytch.com/${otherProject}` }),
    wrong_aud: async () => signed(priv, { aud: [otherProject] }),
    expired: async () => signed(priv, { iat: now - 1300, nbf: now - 1300, exp: now - 1000 }),
    not_yet_valid: async () => signed(priv, { iat: now, nbf: now + 1000, exp: now + 1300 }),
    // signed, so only its parse can fail: jose signs any bytes as a payload
    malformed_json: async () => new CompactSign(new TextEncoder().encode(`{"sub":"${sub}","iss":"stytch.com/${project}"`))
      .setProtectedHeader({ alg: 'RS256', kid: headerKid, typ: 'JWT' }).sign(priv),
    oversized: async () => signed(priv, { more: { ...extra, padding: randomBytes(2850).toString('hex') } }),
    other_user: async () => signed(priv, {
      user: values['other-sub'] ?? `user-test-${randomUUID()}`,
      session: `session-test-${randomUUID()}`,
      more: { ...extra, stytch_tat_identity: values.binding ?? base64url.encode(randomBytes(32)) },
    }),
    new_kid: async () => signed(priv, { k: headerKid }),
    no_typ: async () => signed(priv, { typ: null }),
    typ_other: async () => signed(priv, { typ: 'at+jwt' }),
    // jose writes only numbers: the claims as text, signed as bytes
    iat_string: async () => {
      const claims = JSON.parse(new TextDecoder().decode(base64url.decode((await signed(priv)).split('.')[1])));
      claims.iat = String(claims.iat);
      return new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
        .setProtectedHeader({ alg: 'RS256', kid: headerKid, typ: 'JWT' }).sign(priv);
    },
  });
}

if (values.all) {
  const out = {};
  for (const [k, make] of Object.entries(makers)) out[k] = await make();
  if (priv) out.claims = JSON.parse(new TextDecoder().decode(base64url.decode(out.valid.split('.')[1])));
  console.log(JSON.stringify(out));
} else {
  const make = makers[values.kind];
  if (!make) usage(`unknown kind ${values.kind}${priv ? '' : ' (or it needs --key)'}`);
  const count = values.count !== undefined ? Number(values.count) : 1;
  if (!Number.isInteger(count) || count < 1 || count > 10000) usage('--count is an integer from 1 to 10000');
  const out = [];
  for (let i = 0; i < count; i++) out.push(await make());
  console.log(out.join('\n'));
}
