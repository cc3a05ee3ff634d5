// The auth_request peer of ngx_http_stytch_tat_module, for bench/hit.sh: a
// Node sidecar doing what Stytch's Trusted Auth Token example does, with
// npm's jose and the stytch SDK (t/emulator's node_modules), a per-identity
// cache and single flight, keepalive, and an empty 200 whose headers nginx
// takes with auth_request_set.
//
//   node sidecar.mjs PORT KEY_FILE KID CREDENTIALS_FILE STYTCH_BASE_URL
//
// NODE_EXTRA_CA_CERTS names the emulator's CA.  GET /status answers
// {"entries": N} for the bench's warm-up.  Not a product: no error
// mapping beyond 401, 403 and 502, no refresh.

import http from 'node:http';
import fs from 'node:fs';
import crypto from 'node:crypto';
import * as jose from 'jose';
import * as stytch from 'stytch';

const [port, keyFile, kid, credsFile, baseUrl] = process.argv.slice(2);
const [projectId, secret] = fs.readFileSync(credsFile, 'utf8').trim().split(':');

const issuer = 'https://auth.example.com';
const audience = 'https://api.example.com';
const profileId =
  'trusted-auth-token-profile-test-00000000-0000-0000-0000-000000000000';

const privateKey = await jose.importPKCS8(fs.readFileSync(keyFile, 'utf8'),
                                          'RS256');
const client = new stytch.Client({
  project_id: projectId, secret, custom_base_url: baseUrl,
});

const sessions = new Map();   // identity -> { headers, until }
const inflight = new Map();   // identity -> Promise

async function attest(email, sub, groups) {
  const claims = { email };
  if (groups) claims.assignments = groups.split(',').map((g) => g.trim());
  let jwt = new jose.SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid })
    .setIssuer(issuer)
    .setAudience(audience)
    .setIssuedAt()
    .setNotBefore('0s')
    .setExpirationTime('5m')
    .setJti(crypto.randomUUID());
  if (sub) jwt = jwt.setSubject(sub);
  const token = await jwt.sign(privateKey);
  const r = await client.sessions.attest({
    profile_id: profileId, token, session_duration_minutes: 60,
  });
  const jwtExp = jose.decodeJwt(r.session_jwt).exp * 1000;
  return {
    headers: {
      'Content-Length': '0',
      'X-Stytch-Session-Jwt': r.session_jwt,
      'X-Stytch-User-Id': r.user_id,
      'X-Stytch-Session-Id': r.session.session_id,
    },
    until: Math.min(Date.parse(r.session.expires_at), jwtExp - 60000),
  };
}

const server = http.createServer({ keepAlive: true }, async (req, res) => {
  if (req.url === '/status') {
    const body = JSON.stringify({ entries: sessions.size });
    res.writeHead(200, { 'Content-Type': 'application/json',
                         'Content-Length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  const email = req.headers['x-email'];
  if (!email) {
    res.writeHead(401, { 'Content-Length': '0' });
    res.end();
    return;
  }
  const sub = req.headers['x-user'] || '';
  const groups = req.headers['x-groups'] || '';
  const k = `${email}\0${sub}\0${groups}`;
  let s = sessions.get(k);
  if (!s || s.until <= Date.now()) {
    let p = inflight.get(k);
    if (!p) {
      p = attest(email, sub, groups).finally(() => inflight.delete(k));
      inflight.set(k, p);
    }
    try {
      s = await p;
      sessions.set(k, s);
    } catch (e) {
      const status = e.status_code >= 400 && e.status_code < 500 ? 403 : 502;
      res.writeHead(status, { 'Content-Length': '0' });
      res.end();
      return;
    }
  }
  res.writeHead(200, s.headers);
  res.end();
});

server.keepAliveTimeout = 75000;
server.headersTimeout = 76000;
server.listen(Number(port), '127.0.0.1');
