// A fake Stytch for bench/cold.sh: answers every POST like
// /v1/sessions/attest does (the emulator's consumer answer, about 3 KB:
// user, session, session_token and a session JWT of the emulator's size)
// after a fixed delay, without verifying the token (the emulator's RSA
// work would share core 0 with wrk and blur the latency figures).
//
//   node bench/fake-stytch.mjs PORT CONTROL_PORT CERT KEY DELAY_MS
//
// PORT: HTTPS, the attest; CONTROL_PORT: HTTP, GET /stats gives the
// answers counted and the fake's own time per answer (from the request's
// first byte to the answer's last, delay included) as percentiles in ms;
// GET /reset starts counting again.
import { createServer as https } from 'node:https';
import { createServer as http } from 'node:http';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';

const [port, control, cert, key, delay] = process.argv.slice(2);
const delayMs = Number(delay);

const b64u = (s) => Buffer.from(s).toString('base64url');
const jwtHead = b64u(JSON.stringify({ alg: 'RS256', kid: 'jwk-test-' + randomUUID(), typ: 'JWT' }));
// an RSA-2048 signature's length in base64url; nobody verifies it here
const jwtSig = b64u(Buffer.alloc(256, 0x5a));
const project = 'project-test-00000000-0000-0000-0000-000000000000';

function identity(body) {
  // the token's email and sub, as Stytch provisions the user from them
  try {
    const token = JSON.parse(body).token;
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));
    return { email: claims.email ?? '', sub: claims.sub ?? '' };
  } catch {
    return null;
  }
}

function answer(who) {
  const now = Math.floor(Date.now() / 1000);
  const iso = (t) => new Date(t * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  const userId = 'user-test-' + randomUUID();
  const sessionId = 'session-test-' + randomUUID();
  const factor = {
    type: 'trusted_auth_token', delivery_method: 'trusted_token_exchange',
    last_authenticated_at: iso(now), created_at: iso(now), updated_at: iso(now),
    trusted_auth_token_factor: { token_id: randomUUID().slice(0, 22) },
  };
  const roles = ['stytch_user', 'editor', 'reader'];
  const session = {
    session_id: sessionId, user_id: userId, started_at: iso(now),
    last_accessed_at: iso(now), expires_at: iso(now + 3600),
    attributes: { ip_address: '', user_agent: '' },
    authentication_factors: [factor], roles, custom_claims: {},
  };
  const claims = {
    'https://stytch.com/session': {
      id: sessionId, started_at: iso(now), last_accessed_at: iso(now),
      expires_at: iso(now + 3600), attributes: session.attributes,
      authentication_factors: [factor], roles,
    },
    sub: userId, iss: 'stytch.com/' + project, aud: [project],
    iat: now, nbf: now, exp: now + 300,
  };
  return JSON.stringify({
    status_code: 200, request_id: 'request-id-test-' + randomUUID(),
    user_id: userId,
    session_token: randomUUID().replace(/-/g, '') + randomUUID().slice(0, 12),
    session_jwt: `${jwtHead}.${b64u(JSON.stringify(claims))}.${jwtSig}`,
    user: {
      user_id: userId,
      emails: [{ email_id: 'email-test-' + randomUUID(), email: who.email, verified: true }],
      status: 'active', phone_numbers: [], webauthn_registrations: [],
      providers: [], totps: [], crypto_wallets: [],
      biometric_registrations: [], is_locked: false, roles,
      name: { first_name: '', middle_name: '', last_name: '' },
      created_at: iso(now), password: null, trusted_metadata: {},
      untrusted_metadata: {}, external_id: who.sub,
      lock_created_at: null, lock_expires_at: null,
    },
    session,
  });
}

let times = [];

const server = https({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
  const t0 = process.hrtime.bigint();
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const who = identity(Buffer.concat(chunks).toString());
    setTimeout(() => {
      const out = who
        ? answer(who)
        : '{"status_code":400,"request_id":"request-id-test-0","error_type":"invalid_token","error_message":"no token","error_url":""}';
      res.writeHead(who ? 200 : 400, {
        'Content-Type': 'application/json; charset=utf-8',
        'Content-Length': Buffer.byteLength(out),
      });
      res.end(out, () => times.push(Number(process.hrtime.bigint() - t0) / 1e6));
    }, delayMs);
  });
});
server.keepAliveTimeout = 75000;
server.listen(Number(port), '127.0.0.1');

http((req, res) => {
  if (req.url === '/reset') {
    times = [];
    res.end('{}');
    return;
  }
  const s = times.slice().sort((a, b) => a - b);
  const pct = (p) => (s.length ? +s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2) : 0);
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify({
    count: s.length, p50: pct(0.5), p90: pct(0.9), p99: pct(0.99),
    max: s.length ? +s[s.length - 1].toFixed(2) : 0,
  }));
}).listen(Number(control), '127.0.0.1');
