// The session JWTs the emulator signs, and the control API that tests of
// local verification and of a cluster rely on: their lifetime (config and
// POST /config), the rotation and retirement of the project's signing key
// (JWKS, DIR/project-key.json, authenticate by an old-kid JWT), and the
// per-route call counts.  Plain HTTPS requests trusting the emulator's CA.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID, createPrivateKey } from 'node:crypto';
import {
  generateKeyPair, exportSPKI, createLocalJWKSet, jwtVerify, decodeJwt, decodeProtectedHeader,
} from 'jose';
import { startEmulator, mintTat } from '../testlib/harness.mjs';

const PROJECT_ID = 'project-test-00000000-0000-0000-0000-000000000000';
const SECRET = `secret-test-${randomUUID().replaceAll('-', '')}`;
const PROFILE = 'trusted-auth-token-profile-test-session-jwt';
const JWKS_PATH = `/v1/sessions/jwks/${PROJECT_ID}`;
const ISS = `stytch.com/${PROJECT_ID}`;

describe('session JWTs', () => {
  let dir; let emu; let tatKey;
  const auth = `${PROJECT_ID}:${SECRET}`;

  const post = async (path, body) => {
    const r = await emu.request('POST', path, { body, auth });
    return { status: r.status, body: JSON.parse(r.text) };
  };
  const attest = async (extra = {}) => {
    const email = `user-${randomUUID().slice(0, 8)}@example.com`;
    const r = await post('/v1/sessions/attest', {
      profile_id: PROFILE, token: await mintTat(tatKey, { email }), session_duration_minutes: 60, ...extra,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const jwks = async () => JSON.parse((await emu.request('GET', JWKS_PATH)).text);
  const lifetime = (jwt) => { const c = decodeJwt(jwt); return c.exp - c.iat; };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stytch-emulator-session-jwt-'));
    const pair = await generateKeyPair('RS256', { extractable: true });
    tatKey = pair.privateKey;
    emu = await startEmulator(dir, {
      project_id: PROJECT_ID,
      secret: SECRET,
      profiles: [{
        profile_id: PROFILE, issuer: 'https://auth.example.com', audience: 'https://api.example.com',
        public_keys: [await exportSPKI(pair.publicKey)], jit_provisioning: true,
      }],
    });
  });

  after(async () => {
    if (emu) assert.equal((await emu.stop()).code, 0);
    rmSync(dir, { recursive: true, force: true });
  });

  it('live 300 s by default, as Stytch\'s do; GET /config says so', async () => {
    const a = await attest();
    assert.equal(lifetime(a.session_jwt), 300);
    const cfg = (await emu.control('GET', '/config')).body;
    assert.equal(cfg.session_jwt_lifetime_seconds, 300);
    assert.equal(cfg.project_id, PROJECT_ID);
    assert.ok(!JSON.stringify(cfg).includes(SECRET), 'GET /config never shows the secret');
  });

  it('session_jwt_lifetime_seconds changes at run time, for attest and authenticate', async () => {
    const r = await emu.control('POST', '/config', { session_jwt_lifetime_seconds: 3 });
    assert.equal(r.status, 200);
    assert.equal(r.body.session_jwt_lifetime_seconds, 3);
    const a = await attest({ session_custom_claims: { stytch_tat_identity: 'abc' } });
    assert.equal(lifetime(a.session_jwt), 3);
    const claims = decodeJwt(a.session_jwt);
    assert.equal(claims.stytch_tat_identity, 'abc', 'custom claims at the top level');
    assert.equal(claims.nbf, claims.iat);
    const au = await post('/v1/sessions/authenticate', { session_token: a.session_token });
    assert.equal(au.status, 200);
    assert.equal(lifetime(au.body.session_jwt), 3);
    assert.equal(decodeJwt(au.body.session_jwt).stytch_tat_identity, 'abc');
    for (const bad of [0, -1, 1.5, '3', 86401]) {
      const b = await emu.control('POST', '/config', { session_jwt_lifetime_seconds: bad });
      assert.equal(b.status, 400, `lifetime ${JSON.stringify(bad)} refused`);
    }
    assert.equal((await emu.control('GET', '/config')).body.session_jwt_lifetime_seconds, 3, 'a refused change changes nothing');
    await emu.control('POST', '/config', { session_jwt_lifetime_seconds: 300 });
    assert.equal(lifetime((await attest()).session_jwt), 300);
  });

  it('follow the emulator\'s clock (POST /clock)', async () => {
    await emu.control('POST', '/clock', { offset_seconds: -30 });
    try {
      const before = Math.floor(Date.now() / 1000);
      const c = decodeJwt((await attest()).session_jwt);
      const after = Math.floor(Date.now() / 1000);
      assert.ok(c.iat >= before - 30 && c.iat <= after - 30, `iat ${c.iat} is 30 s behind ${before}..${after}`);
    } finally {
      await emu.control('POST', '/clock', { offset_seconds: 0 });
    }
  });

  it('the signing key rotates: a new kid signs, the JWKS serves both, old-kid JWTs still authenticate; retire drops the old', async () => {
    const k0 = (await emu.control('GET', '/project_keys')).body;
    assert.equal(k0.kids.length, 1);
    assert.equal(k0.current, k0.kids[0]);
    assert.deepEqual((await jwks()).keys.map((k) => k.kid), k0.kids);
    const before = await attest();
    assert.equal(decodeProtectedHeader(before.session_jwt).kid, k0.current);

    const rot = await emu.control('POST', '/project_keys/rotate', {});
    assert.equal(rot.status, 200);
    assert.equal(rot.body.previous, k0.current);
    assert.notEqual(rot.body.current, k0.current);
    assert.match(rot.body.current, /^jwk-test-[0-9a-f-]{36}$/);
    assert.deepEqual(rot.body.kids, [rot.body.current, k0.current]);
    const doc = await jwks();
    assert.deepEqual(doc.keys.map((k) => k.kid), [rot.body.current, k0.current], 'the JWKS serves both, the new one first');
    const set = createLocalJWKSet({ keys: doc.keys });

    const after = await attest();
    assert.equal(decodeProtectedHeader(after.session_jwt).kid, rot.body.current, 'new JWTs use the new key');
    for (const jwt of [before.session_jwt, after.session_jwt]) {
      const { payload } = await jwtVerify(jwt, set, { issuer: ISS, audience: PROJECT_ID });
      assert.ok(payload.sub.startsWith('user-test-'));
    }
    // the old key's JWT still authenticates while that key is served
    const au = await post('/v1/sessions/authenticate', { session_jwt: before.session_jwt });
    assert.equal(au.status, 200);
    assert.equal(decodeProtectedHeader(au.body.session_jwt).kid, rot.body.current, 'the refreshed JWT has the new kid');

    // DIR/project-key.json names the current key first: what the token forge signs with
    const saved = JSON.parse(readFileSync(join(dir, 'project-key.json'), 'utf8'));
    assert.equal(saved.kid, rot.body.current);
    assert.deepEqual(saved.keys.map((k) => k.kid), rot.body.kids);
    assert.equal(createPrivateKey(saved.private_pem).asymmetricKeyType, 'rsa');

    const named = await emu.control('POST', '/project_keys/rotate', { kid: 'kid-named-by-the-test' });
    assert.equal(named.body.current, 'kid-named-by-the-test');
    assert.equal((await emu.control('POST', '/project_keys/rotate', { kid: 'kid-named-by-the-test' })).status, 400, 'a kid in use is refused');
    assert.equal((await emu.control('POST', '/project_keys/retire', { kid: 'kid-named-by-the-test' })).status, 400, 'the current key cannot be retired');
    assert.equal((await emu.control('POST', '/project_keys/retire', { kid: 'no-such-kid' })).status, 400);
    const one = await emu.control('POST', '/project_keys/retire', { kid: k0.current });
    assert.deepEqual(one.body.removed, [k0.current]);
    assert.deepEqual((await jwks()).keys.map((k) => k.kid), ['kid-named-by-the-test', rot.body.current]);

    const ret = await emu.control('POST', '/project_keys/retire', {});
    assert.equal(ret.status, 200);
    assert.deepEqual(ret.body.removed, [rot.body.current]);
    assert.deepEqual((await jwks()).keys.map((k) => k.kid), ['kid-named-by-the-test']);
    const gone = await post('/v1/sessions/authenticate', { session_jwt: after.session_jwt });
    assert.equal(gone.status, 400, 'a JWT of a retired key no longer parses');
    assert.equal(gone.body.error_type, 'unable_to_parse_session_jwt');
    // a token of the session still works: the session itself lives on
    const byToken = await post('/v1/sessions/authenticate', { session_token: after.session_token });
    assert.equal(byToken.status, 200);
  });

  it('the keys survive a restart on the same DIR', async () => {
    const kids = (await emu.control('GET', '/project_keys')).body.kids;
    assert.equal((await emu.stop()).code, 0);
    emu = await startEmulator(dir, JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
    assert.deepEqual((await emu.control('GET', '/project_keys')).body.kids, kids);
    assert.deepEqual((await jwks()).keys.map((k) => k.kid), kids);
  });

  it('GET /call_counts counts per route and outcome, since a sequence number', async () => {
    await emu.control('DELETE', '/calls');
    await attest();
    await attest();
    const a = await attest();
    await post('/v1/sessions/authenticate', { session_token: a.session_token });
    await post('/v1/sessions/authenticate', { session_token: 'no-such-token' });
    await jwks();
    await emu.control('POST', '/faults', { path: JWKS_PATH, mode: 'status', status: 503, count: 1 });
    await emu.request('GET', JWKS_PATH);
    const c = (await emu.control('GET', '/call_counts')).body;
    assert.deepEqual(c.counts['POST /v1/sessions/attest'], { total: 3, ok: 3, error: 0, fault: 0 });
    assert.deepEqual(c.counts['POST /v1/sessions/authenticate'], { total: 2, ok: 1, error: 1, fault: 0 });
    assert.deepEqual(c.counts[`GET ${JWKS_PATH}`], { total: 2, ok: 1, error: 0, fault: 1 });
    assert.equal(Object.keys(c.counts).length, 3);
    await jwks();
    const later = (await emu.control('GET', `/call_counts?since=${c.last_seq}`)).body;
    assert.deepEqual(later.counts, { [`GET ${JWKS_PATH}`]: { total: 1, ok: 1, error: 0, fault: 0 } });
    assert.equal(later.last_seq, c.last_seq + 1);
  });
});
