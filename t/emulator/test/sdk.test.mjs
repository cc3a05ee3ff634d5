// Fidelity test: drive the emulator with Stytch's official Node SDK, and its
// control API and fault modes with plain HTTPS requests.
//
// The SDK uses the platform's fetch and node:https, so it must trust the
// emulator's CA at process start: this file first makes the CA in a temp dir,
// then re-runs itself with NODE_EXTRA_CA_CERTS pointing at it (the child's
// test results are reported by node's test runner as this file's).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { ensureCerts } from '../lib/certs.mjs';

const CHILD_ENV = 'STYTCH_EMULATOR_TEST_DIR';

if (!process.env[CHILD_ENV]) {
  const dir = mkdtempSync(join(tmpdir(), 'stytch-emulator-test-'));
  try {
    const { caCert } = ensureCerts(dir);
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url)], {
      stdio: 'inherit',
      env: { ...process.env, [CHILD_ENV]: dir, NODE_EXTRA_CA_CERTS: caCert },
    });
    process.exitCode = r.status ?? 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
} else {
  await defineTests(process.env[CHILD_ENV]);
}

async function defineTests(dir) {
  const { describe, it, before, after, afterEach } = await import('node:test');
  const assert = (await import('node:assert/strict')).default;
  const { default: stytch } = await import('stytch');
  const jose = await import('jose');
  const { startEmulator, mintTat, startJwksServer } = await import('../testlib/harness.mjs');

  const PROJECT_ID = 'project-test-00000000-0000-0000-0000-000000000000';
  const SECRET = `secret-test-${randomUUID().replaceAll('-', '')}`;
  const P = 'trusted-auth-token-profile-test-pem';
  const P_NOJIT = 'trusted-auth-token-profile-test-nojit';
  const P_JWKS = 'trusted-auth-token-profile-test-jwks';
  const P_ES = 'trusted-auth-token-profile-test-es256';
  const P_B2B = 'trusted-auth-token-profile-test-b2b';
  const P_ED = 'trusted-auth-token-profile-test-eddsa';
  const P_B2B_NOJIT = 'trusted-auth-token-profile-test-b2b-nojit';
  const ORG = 'organization-test-11111111-1111-1111-1111-111111111111';
  const MAPPING = { email: 'email', token_id: 'jti', external_user_id: 'sub', role_ids: 'assignments' };
  const ISS = 'https://auth.example.com';
  const AUD = 'https://api.example.com';

  let emu; let jwksSrv; let config; let client; let b2b;
  const keys = {};
  const secretsSeen = [];       // full tokens that must never reach the log
  const uniq = () => randomUUID().slice(0, 8);
  const email = () => `user-${uniq()}@example.com`;
  const tat = async (opts = {}) => {
    const t = await mintTat(opts.key ?? keys.rsa.privateKey, opts);
    secretsSeen.push(t);
    return t;
  };
  const expectStytchError = (promise, status, type, msgPart) => assert.rejects(promise, (e) => {
    assert.ok(e instanceof stytch.StytchError, `expected StytchError, got ${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.status_code, status, e.message);
    assert.equal(e.error_type, type, e.message);
    assert.match(e.request_id, /^request-id-test-[0-9a-f-]{36}$/);
    assert.equal(e.error_url, `https://stytch.com/docs/api/errors/${status}#${type}`);
    if (msgPart) assert.match(e.error_message, msgPart);
    return true;
  });
  const jwkFor = async (publicKey, kid) => ({ ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' });

  before(async () => {
    keys.rsa = await jose.generateKeyPair('RS256', { extractable: true });
    keys.other = await jose.generateKeyPair('RS256', { extractable: true });
    keys.ec = await jose.generateKeyPair('ES256', { extractable: true });
    keys.ed = await jose.generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    keys.jwksA = await jose.generateKeyPair('RS256', { extractable: true });
    keys.jwksB = await jose.generateKeyPair('RS256', { extractable: true });
    jwksSrv = await startJwksServer();
    jwksSrv.keys = [await jwkFor(keys.jwksA.publicKey, 'kid-a')];
    const rsaPem = await jose.exportSPKI(keys.rsa.publicKey);
    const base = { issuer: ISS, audience: AUD, attribute_mapping: MAPPING, jit_provisioning: true };
    config = {
      project_id: PROJECT_ID,
      secret: SECRET,
      max_token_lifetime_seconds: 3600,
      clock_skew_seconds: 60,
      rbac_roles: ['reader', 'writer', 'admin'],
      profiles: [
        { ...base, profile_id: P, public_keys: [rsaPem] },
        { ...base, profile_id: P_NOJIT, public_keys: [rsaPem], jit_provisioning: false },
        { ...base, profile_id: P_JWKS, jwks_url: jwksSrv.url },
        { ...base, profile_id: P_ES, public_keys: [await jose.exportSPKI(keys.ec.publicKey)], algorithms: ['ES256'] },
        { ...base, profile_id: P_ED, public_keys: [await jose.exportSPKI(keys.ed.publicKey), rsaPem], algorithms: ['EdDSA', 'RS256'] },
        {
          ...base, profile_id: P_B2B, public_keys: [rsaPem], b2b: true,
          attribute_mapping: { ...MAPPING, organization_id: 'org', external_member_id: 'sub' },
        },
        {
          ...base, profile_id: P_B2B_NOJIT, public_keys: [rsaPem], b2b: true, jit_provisioning: false,
          attribute_mapping: { ...MAPPING, organization_id: 'org', external_member_id: 'sub' },
        },
      ],
      organizations: [{ organization_id: ORG, organization_slug: 'example', organization_name: 'Example' }],
    };
    emu = await startEmulator(dir, config);
    client = new stytch.Client({ project_id: PROJECT_ID, secret: SECRET, custom_base_url: emu.baseUrl });
    b2b = new stytch.B2BClient({ project_id: PROJECT_ID, secret: SECRET, custom_base_url: emu.baseUrl });
  });

  after(async () => {
    if (emu) {
      const { code } = await emu.stop();
      assert.equal(code, 0, 'emulator exits 0 on SIGTERM');
    }
    await jwksSrv?.close();
  });

  afterEach(async () => {
    await emu.control('DELETE', '/faults');
    await emu.control('POST', '/clock', { offset_seconds: 0 });
  });

  describe('startup', () => {
    it('reuses the CA already in DIR and serves TLS for localhost and stytch.test', async () => {
      assert.match(emu.stderr, /reusing CA/);
      assert.equal(emu.stdout, 'emulator ready\n');
      assert.ok(emu.readyFileExists());
      const r = await emu.request('GET', `/v1/sessions/jwks/${PROJECT_ID}`, { servername: 'stytch.test' });
      assert.equal(r.status, 200, r.error);
      const untrusted = await emu.request('GET', `/v1/sessions/jwks/${PROJECT_ID}`, { ca: undefined });
      assert.equal(untrusted.status, 200, 'NODE_EXTRA_CA_CERTS trusts the CA process-wide');
    });
  });

  describe('consumer attest through the SDK', () => {
    it('creates a user and a session with the trusted_auth_token factor', async () => {
      const jti = `jti-${uniq()}`;
      const mail = email();
      const token = await tat({ jti, email: mail, sub: 'ext-42' });
      const r = await client.sessions.attest({ profile_id: P, token, session_duration_minutes: 60 });
      assert.equal(r.status_code, 200);
      assert.match(r.request_id, /^request-id-test-/);
      assert.match(r.user_id, /^user-test-[0-9a-f-]{36}$/);
      assert.equal(r.session_token.length, 44);
      assert.match(r.session_token, /^[A-Za-z0-9_-]{44}$/);
      assert.match(r.session.session_id, /^session-test-[0-9a-f-]{36}$/);
      assert.equal(r.session.user_id, r.user_id);
      assert.equal(r.session.authentication_factors.length, 1);
      const f = r.session.authentication_factors[0];
      assert.equal(f.type, 'trusted_auth_token');
      assert.equal(f.delivery_method, 'trusted_token_exchange');
      assert.deepEqual(f.trusted_auth_token_factor, { token_id: jti });
      for (const k of ['last_authenticated_at', 'created_at', 'updated_at']) assert.match(f[k], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.match(r.session.expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const life = Date.parse(r.session.expires_at) - Date.parse(r.session.started_at);
      assert.equal(life, 3600e3);
      assert.equal(r.user.user_id, r.user_id);
      assert.equal(r.user.status, 'active');
      assert.deepEqual(r.user.emails.map((e) => [e.email, e.verified]), [[mail, true]]);
      assert.equal(r.user.external_id, 'ext-42');
      assert.deepEqual(r.user.roles, ['stytch_user', 'reader', 'writer']);
      assert.deepEqual(r.session.roles, ['stytch_user', 'reader', 'writer']);
      assert.deepEqual(r.user.trusted_metadata, {});

      const hdr = jose.decodeProtectedHeader(r.session_jwt);
      assert.equal(hdr.alg, 'RS256');
      assert.match(hdr.kid, /^jwk-test-/);
      const set = jose.createLocalJWKSet(await (await fetch(`${emu.baseUrl}/v1/sessions/jwks/${PROJECT_ID}`)).json());
      const { payload } = await jose.jwtVerify(r.session_jwt, set, { issuer: `stytch.com/${PROJECT_ID}`, audience: PROJECT_ID });
      assert.deepEqual(payload.aud, [PROJECT_ID]);
      assert.equal(payload.sub, r.user_id);
      assert.equal(payload.exp - payload.iat, 300);
      assert.equal(payload.nbf, payload.iat);
      const sc = payload['https://stytch.com/session'];
      assert.equal(sc.id, r.session.session_id);
      assert.equal(sc.expires_at, r.session.expires_at);
      assert.deepEqual(sc.attributes, { ip_address: '', user_agent: '' });
      assert.equal(sc.authentication_factors[0].trusted_auth_token_factor.token_id, jti);

      // same email again: same user, a new session
      const r2 = await client.sessions.attest({ profile_id: P, token: await tat({ email: mail }), session_duration_minutes: 5 });
      assert.equal(r2.user_id, r.user_id);
      assert.notEqual(r2.session.session_id, r.session.session_id);
    });

    it('creates no session without session_duration_minutes', async () => {
      const r = await client.sessions.attest({ profile_id: P, token: await tat({ email: email() }) });
      assert.equal(r.status_code, 200);
      assert.match(r.user_id, /^user-test-/);
      assert.equal(r.session_token, '');
      assert.equal(r.session_jwt, '');
      assert.equal('session' in r, false);
    });

    it('authenticates the session by token, by JWT and locally against the JWKS', async () => {
      const a = await client.sessions.attest({ profile_id: P, token: await tat({ email: email() }), session_duration_minutes: 30 });
      secretsSeen.push(a.session_token, a.session_jwt);
      const byToken = await client.sessions.authenticate({ session_token: a.session_token });
      assert.equal(byToken.status_code, 200);
      assert.equal(byToken.session.session_id, a.session.session_id);
      assert.equal(byToken.session_token, a.session_token);
      assert.equal(byToken.user.user_id, a.user_id);
      assert.equal('user_id' in byToken, false, 'SessionsAuthenticateResponse has no top-level user_id');
      assert.equal(byToken.session.user_id, a.user_id);
      assert.ok(byToken.session_jwt && byToken.session_jwt.split('.').length === 3);
      const byJwt = await client.sessions.authenticate({ session_jwt: a.session_jwt, session_duration_minutes: 120 });
      assert.equal(byJwt.session.session_id, a.session.session_id);
      assert.ok(Date.parse(byJwt.session.expires_at) > Date.parse(a.session.expires_at), 'expiry extended');
      await emu.control('DELETE', '/calls');
      const local = await client.sessions.authenticateJwtLocal({ session_jwt: a.session_jwt });
      assert.equal(local.session_id, a.session.session_id);
      assert.equal(local.user_id, a.user_id);
      assert.equal(local.authentication_factors[0].type, 'trusted_auth_token');
      assert.deepEqual(local.roles, a.session.roles);
      const calls = (await emu.control('GET', `/calls?path=/v1/sessions/jwks/${PROJECT_ID}`)).body.calls;
      assert.equal(calls.length, 1, 'the SDK fetched the JWKS from the emulator once');
      assert.equal(calls[0].status, 200);
      assert.equal(calls[0].auth, 'missing');
    });

    it('attaches the factor to an existing session (same session_id, extended)', async () => {
      const mail = email();
      const a = await client.sessions.attest({ profile_id: P, token: await tat({ email: mail }), session_duration_minutes: 10 });
      const jti2 = `second-${uniq()}`;
      const b = await client.sessions.attest({ profile_id: P, token: await tat({ email: mail, jti: jti2 }), session_token: a.session_token, session_duration_minutes: 90 });
      assert.equal(b.session.session_id, a.session.session_id);
      assert.equal(b.session_token, a.session_token);
      assert.equal(b.session.authentication_factors.length, 2);
      assert.equal(b.session.authentication_factors[1].trusted_auth_token_factor.token_id, jti2);
      assert.ok(Date.parse(b.session.expires_at) > Date.parse(a.session.expires_at));
      const c = await client.sessions.attest({ profile_id: P, token: await tat({ email: mail }), session_jwt: b.session_jwt });
      assert.equal(c.session.session_id, a.session.session_id);
      assert.equal(c.session.authentication_factors.length, 3);
      assert.equal(c.session.expires_at, b.session.expires_at, 'no duration: expiry unchanged');
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ email: email() }), session_token: a.session_token }),
        400, 'user_id_mismatch');
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ email: mail }), session_token: 'x'.repeat(44) }),
        404, 'session_not_found');
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ email: mail }), session_token: a.session_token, session_jwt: a.session_jwt }),
        400, 'too_many_session_arguments');
    });

    it('stores custom claims on a new session and in its JWT; refuses reserved ones and more than 4 KB', async () => {
      const r = await client.sessions.attest({
        profile_id: P, token: await tat({ email: email() }), session_duration_minutes: 5,
        session_custom_claims: { tier: 'gold', groups: ['a', 'b'] },
      });
      assert.deepEqual(r.session.custom_claims, { tier: 'gold', groups: ['a', 'b'] });
      const p = jose.decodeJwt(r.session_jwt);
      assert.equal(p.tier, 'gold');
      assert.equal(p.iss, `stytch.com/${PROJECT_ID}`);
      const local = await client.sessions.authenticateJwtLocal({ session_jwt: r.session_jwt });
      assert.deepEqual(local.custom_claims, { tier: 'gold', groups: ['a', 'b'] }, 'the SDK reads them from the JWT');
      // Stytch's custom claims guide: reserved names and its namespace are errors
      for (const [claims, type] of [[{ iss: 'evil' }, 'reserved_claims_in_custom_claims'],
        [{ jti: 'x' }, 'reserved_claims_in_custom_claims'],
        [{ 'https://stytch.com/session': 1 }, 'stytch_claims_in_custom_claims'],
        [{ big: 'x'.repeat(5000) }, 'custom_claims_too_large']]) {
        await expectStytchError(client.sessions.attest({
          profile_id: P, token: await tat({ email: email() }), session_duration_minutes: 5, session_custom_claims: claims,
        }), 400, type);
      }
      // the boundary: 4096 bytes of JSON pass
      const fill = 'y'.repeat(4096 - JSON.stringify({ f: '' }).length);
      const big = await client.sessions.attest({
        profile_id: P, token: await tat({ email: email() }), session_duration_minutes: 5, session_custom_claims: { f: fill },
      });
      assert.equal(big.session.custom_claims.f.length, fill.length);
      // on authenticate the same rules apply
      await expectStytchError(client.sessions.authenticate({ session_token: r.session_token, session_custom_claims: { sub: 'x' } }),
        400, 'reserved_claims_in_custom_claims');
      // the attest reference's reading, "ignored": a setting
      await emu.control('POST', '/config', { custom_claims_reserved: 'ignore' });
      try {
        const ign = await client.sessions.attest({
          profile_id: P, token: await tat({ email: email() }), session_duration_minutes: 5,
          session_custom_claims: { tier: 'silver', iss: 'evil', 'https://stytch.com/session': 1 },
        });
        assert.deepEqual(ign.session.custom_claims, { tier: 'silver' });
      } finally {
        await emu.control('POST', '/config', { custom_claims_reserved: 'error' });
      }
    });

    it('accepts ES256 only on a profile that lists it', async () => {
      const es = await tat({ key: keys.ec.privateKey, alg: 'ES256', email: email() });
      const ok = await client.sessions.attest({ profile_id: P_ES, token: es });
      assert.equal(ok.status_code, 200);
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ key: keys.ec.privateKey, alg: 'ES256' }) }),
        400, 'invalid_trusted_auth_token', /algorithm "ES256" is not allowed/);
    });

    it('accepts EdDSA on a profile that lists it, trying each PEM key', async () => {
      const ed = await tat({ key: keys.ed.privateKey, alg: 'EdDSA', email: email() });
      assert.equal((await client.sessions.attest({ profile_id: P_ED, token: ed })).status_code, 200);
      assert.equal((await client.sessions.attest({ profile_id: P_ED, token: await tat({ email: email() }) })).status_code, 200);
      await expectStytchError(client.sessions.attest({ profile_id: P_ES, token: await tat({ key: keys.ed.privateKey, alg: 'EdDSA' }) }),
        400, 'invalid_trusted_auth_token', /algorithm "EdDSA" is not allowed/);
    });

    it('accepts aud as an array containing the audience', async () => {
      const r = await client.sessions.attest({ profile_id: P, token: await tat({ email: email(), aud: ['other', AUD] }) });
      assert.equal(r.status_code, 200);
    });
  });

  describe('errors arrive as StytchError', () => {
    it('bad signature', async () => {
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ key: keys.other.privateKey }) }),
        400, 'invalid_trusted_auth_token', /signature/);
    });
    it('wrong iss', async () => {
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ iss: 'https://evil.example.com' }) }),
        400, 'invalid_trusted_auth_token', /iss/);
    });
    it('wrong aud', async () => {
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ aud: 'https://other.example.com' }) }),
        400, 'invalid_trusted_auth_token', /aud/);
    });
    it('expired, missing exp, future nbf/iat, too long a lifetime', async () => {
      const now = Math.floor(Date.now() / 1000);
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ iat: now - 600, exp: now - 10 }) }),
        400, 'invalid_trusted_auth_token', /expired/);
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ noExp: true }) }),
        400, 'invalid_trusted_auth_token', /no exp/);
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ nbf: now + 120 }) }),
        400, 'invalid_trusted_auth_token', /nbf/);
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ iat: now + 120, exp: now + 400 }) }),
        400, 'invalid_trusted_auth_token', /iat/);
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ iat: now, exp: now + 3601 }) }),
        400, 'invalid_trusted_auth_token', /lifetime of 3601s exceeds the maximum of 3600s/);
      // within the clock skew: accepted
      const ok = await client.sessions.attest({ profile_id: P, token: await tat({ email: email(), iat: now + 30, nbf: now + 30, exp: now + 300 }) });
      assert.equal(ok.status_code, 200);
    });
    it('missing email or token id claims', async () => {
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ email: null }) }),
        400, 'invalid_trusted_auth_token', /email/);
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ noJti: true }) }),
        400, 'invalid_trusted_auth_token', /token id claim \(jti\)/);
    });
    it('replayed jti', async () => {
      const token = await tat({ email: email() });
      await client.sessions.attest({ profile_id: P, token });
      await expectStytchError(client.sessions.attest({ profile_id: P, token }), 400, 'invalid_trusted_auth_token', /token_id already used/);
      const again = await tat({ email: email(), jti: jose.decodeJwt(token).jti });
      await expectStytchError(client.sessions.attest({ profile_id: P, token: again }), 400, 'invalid_trusted_auth_token', /already used/);
    });
    it('an email that is no address: invalid_email (Google IAP\'s prefixed form)', async () => {
      const mail = `iap-${uniq()}@example.com`;
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ email: `accounts.google.com:${mail}` }) }),
        400, 'invalid_email');
      await expectStytchError(b2b.sessions.attest({ profile_id: P_B2B, token: await tat({ email: 'no-domain@', extra: { org: ORG } }) }),
        400, 'invalid_email');
      const ok = await client.sessions.attest({ profile_id: P, token: await tat({ email: mail }) });
      assert.equal(ok.user.emails[0].email, mail);
    });
    it('an external id another user has: duplicate_user_external_id (B2B: duplicate_member_external_id)', async () => {
      const ext = `ext-${uniq()}`;
      const first = email();
      await client.sessions.attest({ profile_id: P, token: await tat({ email: first, sub: ext }) });
      const again = await client.sessions.attest({ profile_id: P, token: await tat({ email: first, sub: ext }) });
      assert.equal(again.user.external_id, ext, 'the same user keeps it');
      const before = (await emu.control('GET', '/state')).body.users;
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ email: email(), sub: ext }) }),
        400, 'duplicate_user_external_id');
      assert.equal((await emu.control('GET', '/state')).body.users, before, 'no user created');
      await b2b.sessions.attest({ profile_id: P_B2B, token: await tat({ email: email(), sub: ext, extra: { org: ORG } }) });
      await expectStytchError(b2b.sessions.attest({ profile_id: P_B2B, token: await tat({ email: email(), sub: ext, extra: { org: ORG } }) }),
        400, 'duplicate_member_external_id');
    });
    it('a role id not in the project\'s RBAC policy: invalid_rbac_role_id', async () => {
      const mail = email();
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat({ email: mail, extra: { assignments: ['reader', 'nope'] } }) }),
        400, 'invalid_rbac_role_id', /"nope"/);
      await expectStytchError(b2b.sessions.attest({ profile_id: P_B2B, token: await tat({ email: mail, extra: { org: ORG, assignments: ['nope'] } }) }),
        400, 'invalid_rbac_role_id');
      const ok = await client.sessions.attest({ profile_id: P, token: await tat({ email: mail, extra: { assignments: ['stytch_user', 'admin'] } }) });
      assert.deepEqual(ok.user.roles, ['stytch_user', 'admin'], 'Stytch\'s default role and a policy role');
      // without a policy in the configuration every role id passes
      await emu.control('POST', '/config', { rbac_roles: null });
      try {
        const any = await client.sessions.attest({ profile_id: P, token: await tat({ email: mail, extra: { assignments: ['nope'] } }) });
        assert.deepEqual(any.user.roles, ['stytch_user', 'nope']);
      } finally {
        await emu.control('POST', '/config', { rbac_roles: config.rbac_roles });
      }
    });
    it('unknown profile', async () => {
      await expectStytchError(client.sessions.attest({ profile_id: 'trusted-auth-token-profile-test-nope', token: await tat() }),
        404, 'trusted_token_profile_not_found');
    });
    it('bad credentials', async () => {
      const bad = new stytch.Client({ project_id: PROJECT_ID, secret: 'secret-test-wrong', custom_base_url: emu.baseUrl });
      await expectStytchError(bad.sessions.attest({ profile_id: P, token: await tat() }), 401, 'unauthorized_credentials');
      await expectStytchError(bad.sessions.authenticate({ session_token: 'x'.repeat(44) }), 401, 'unauthorized_credentials');
    });
    it('user_not_found with JIT provisioning off', async () => {
      await expectStytchError(client.sessions.attest({ profile_id: P_NOJIT, token: await tat({ email: email() }) }), 404, 'user_not_found');
      // a user created elsewhere can attest through the non-JIT profile
      const mail = email();
      await client.sessions.attest({ profile_id: P, token: await tat({ email: mail }) });
      const r = await client.sessions.attest({ profile_id: P_NOJIT, token: await tat({ email: mail }) });
      assert.equal(r.status_code, 200);
    });
    it('request validation', async () => {
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat(), session_duration_minutes: 4 }), 400, 'invalid_session_duration');
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat(), session_duration_minutes: 527041 }), 400, 'invalid_session_duration');
      await expectStytchError(client.sessions.attest({ token: await tat() }), 400, 'missing_profile_id');
      await expectStytchError(client.sessions.attest({ profile_id: P }), 400, 'missing_token');
      await expectStytchError(client.sessions.attest({ profile_id: P, token: 'not-a-jwt' }), 400, 'invalid_trusted_auth_token', /well-formed/);
      await expectStytchError(client.sessions.authenticate({}), 400, 'no_session_arguments');
      await expectStytchError(client.sessions.authenticate({ session_token: 'a', session_jwt: 'b' }), 400, 'too_many_session_arguments');
      await expectStytchError(client.sessions.authenticate({ session_token: 'y'.repeat(44) }), 404, 'session_not_found');
      await expectStytchError(client.sessions.authenticate({ session_jwt: 'not-a-jwt' }), 400, 'unable_to_parse_session_jwt');
      const foreign = await tat({ email: email() });   // signed, but not with the project's key
      await expectStytchError(client.sessions.authenticate({ session_jwt: foreign }), 400, 'unable_to_parse_session_jwt');
      // signed with the project's key (kept in DIR) but for another project
      const saved = JSON.parse(readFileSync(join(dir, 'project-key.json'), 'utf8'));
      const pkey = await jose.importPKCS8(saved.private_pem, 'RS256');
      const now = Math.floor(Date.now() / 1000);
      const projectJwt = (iss, aud) => new jose.SignJWT({ 'https://stytch.com/session': { id: 'session-test-x' } })
        .setProtectedHeader({ alg: 'RS256', kid: saved.kid, typ: 'JWT' }).setIssuer(iss).setAudience(aud)
        .setSubject('user-test-x').setIssuedAt(now).setExpirationTime(now + 300).sign(pkey);
      await expectStytchError(client.sessions.authenticate({ session_jwt: await projectJwt('stytch.com/project-test-other', [PROJECT_ID]) }),
        400, 'jwt_invalid_issuer');
      await expectStytchError(client.sessions.authenticate({ session_jwt: await projectJwt(`stytch.com/${PROJECT_ID}`, ['project-test-other']) }),
        400, 'jwt_invalid_audience');
      const r = await emu.request('POST', '/v1/sessions/attest', { rawBody: '{"profile_id":', auth: `${PROJECT_ID}:${SECRET}` });
      assert.equal(r.status, 400);
      assert.equal(JSON.parse(r.text).error_type, 'invalid_request_body');
      const j = await emu.request('GET', '/v1/sessions/jwks/project-test-other');
      assert.equal(j.status, 404);
      assert.equal(JSON.parse(j.text).error_type, 'project_not_found');
    });
  });

  describe('JWKS-URL profile', () => {
    it('fetches, caches, refetches for an unknown kid at most once per 10 s, and after 5 minutes', async () => {
      const fetches = async () => (await emu.control('GET', '/jwks_fetches')).body.fetches.filter((f) => f.url === jwksSrv.url);
      const r1 = await client.sessions.attest({ profile_id: P_JWKS, token: await tat({ key: keys.jwksA.privateKey, kid: 'kid-a', email: email() }) });
      assert.equal(r1.status_code, 200);
      assert.equal((await fetches()).length, 1);
      assert.equal((await fetches())[0].reason, 'initial');
      await client.sessions.attest({ profile_id: P_JWKS, token: await tat({ key: keys.jwksA.privateKey, kid: 'kid-a', email: email() }) });
      await client.sessions.attest({ profile_id: P_JWKS, token: await tat({ key: keys.jwksA.privateKey, email: email() }) }); // no kid: try each
      assert.equal((await fetches()).length, 1, 'served from cache');

      // rotation: kid-b appears at the JWKS URL
      jwksSrv.keys = [await jwkFor(keys.jwksA.publicKey, 'kid-a'), await jwkFor(keys.jwksB.publicKey, 'kid-b')];
      await expectStytchError(client.sessions.attest({ profile_id: P_JWKS, token: await tat({ key: keys.jwksB.privateKey, kid: 'kid-b' }) }),
        400, 'invalid_trusted_auth_token', /No key with kid "kid-b"/);
      assert.equal((await fetches()).length, 1, 'rate limited: no refetch within 10 s');
      await emu.control('POST', '/clock', { offset_seconds: 11 });
      const now = Math.floor(Date.now() / 1000);
      const r2 = await client.sessions.attest({ profile_id: P_JWKS, token: await tat({ key: keys.jwksB.privateKey, kid: 'kid-b', email: email(), iat: now + 11, exp: now + 300 }) });
      assert.equal(r2.status_code, 200);
      let f = await fetches();
      assert.equal(f.length, 2);
      assert.equal(f[1].reason, 'unknown_kid');
      await expectStytchError(client.sessions.attest({ profile_id: P_JWKS, token: await tat({ key: keys.jwksB.privateKey, kid: 'kid-zzz', iat: now + 11 }) }),
        400, 'invalid_trusted_auth_token');
      assert.equal((await fetches()).length, 2, 'unknown kid again: still rate limited');
      await emu.control('POST', '/clock', { offset_seconds: 400 });
      await client.sessions.attest({ profile_id: P_JWKS, token: await tat({ key: keys.jwksA.privateKey, kid: 'kid-a', email: email(), iat: now + 400, exp: now + 700 }) });
      f = await fetches();
      assert.equal(f.length, 3);
      assert.equal(f[2].reason, 'expired');
    });
  });

  describe('profile settings for what Stytch does not publish', () => {
    const P_SET = 'trusted-auth-token-profile-test-settings';
    const withProfile = async (settings, fn) => {
      const r = await emu.control('POST', '/config', {
        profiles: [...config.profiles, { ...config.profiles[0], profile_id: P_SET, ...settings }],
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      try { await fn(); } finally { await emu.control('POST', '/config', { profiles: config.profiles }); }
    };

    it('token_id_replay: reject (default) or allow', async () => {
      await withProfile({ token_id_replay: 'allow' }, async () => {
        const token = await tat({ email: email() });
        await client.sessions.attest({ profile_id: P_SET, token });
        assert.equal((await client.sessions.attest({ profile_id: P_SET, token })).status_code, 200, 'a replay passes');
      });
      assert.equal((await emu.control('POST', '/config', {
        profiles: [{ ...config.profiles[0], token_id_replay: 'sometimes' }],
      })).status, 400);
    });

    it('max_token_lifetime_seconds and clock_skew_seconds per profile', async () => {
      const now = Math.floor(Date.now() / 1000);
      await withProfile({ max_token_lifetime_seconds: 300, clock_skew_seconds: 0 }, async () => {
        assert.equal((await client.sessions.attest({ profile_id: P_SET, token: await tat({ email: email(), iat: now, exp: now + 300 }) })).status_code, 200);
        await expectStytchError(client.sessions.attest({ profile_id: P_SET, token: await tat({ iat: now, exp: now + 301 }) }),
          400, 'invalid_trusted_auth_token', /lifetime of 301s exceeds the maximum of 300s/);
        await expectStytchError(client.sessions.attest({ profile_id: P_SET, token: await tat({ iat: now + 30, exp: now + 300 }) }),
          400, 'invalid_trusted_auth_token', /iat/);
      });
    });

    it('jwks_cache_seconds and jwks_min_refetch_seconds per profile', async () => {
      const fetches = async () => (await emu.control('GET', '/jwks_fetches')).body.fetches.filter((f) => f.url === jwksSrv.url).length;
      jwksSrv.keys = [await jwkFor(keys.jwksA.publicKey, 'kid-a')];
      await withProfile({ jwks_url: jwksSrv.url, public_keys: undefined, jwks_cache_seconds: 60, jwks_min_refetch_seconds: 0 }, async () => {
        const n0 = await fetches();
        const now = Math.floor(Date.now() / 1000);
        await client.sessions.attest({ profile_id: P_SET, token: await tat({ key: keys.jwksA.privateKey, kid: 'kid-a', email: email() }) });
        assert.equal(await fetches(), n0 + 1);
        // an unknown kid refetches at once: no rate limit here
        await expectStytchError(client.sessions.attest({ profile_id: P_SET, token: await tat({ key: keys.jwksA.privateKey, kid: 'kid-x' }) }),
          400, 'invalid_trusted_auth_token', /No key with kid "kid-x"/);
        assert.equal(await fetches(), n0 + 2);
        await emu.control('POST', '/clock', { offset_seconds: 61 });
        await client.sessions.attest({ profile_id: P_SET, token: await tat({ key: keys.jwksA.privateKey, kid: 'kid-a', email: email(), iat: now + 61, exp: now + 300 }) });
        assert.equal(await fetches(), n0 + 3, 'refetched after 60 s');
      });
    });
  });

  describe('B2B through the SDK', () => {
    it('attests a member into an organization and authenticates the member session', async () => {
      const jti = `b2b-${uniq()}`;
      const mail = email();
      const r = await b2b.sessions.attest({ profile_id: P_B2B, token: await tat({ email: mail, jti, extra: { org: ORG } }) });
      assert.equal(r.status_code, 200);
      assert.match(r.member_id, /^member-test-[0-9a-f-]{36}$/);
      assert.equal(r.member.member_id, r.member_id);
      assert.equal(r.member.email_address, mail);
      assert.equal(r.member.status, 'active');
      assert.equal(r.member.organization_id, ORG);
      assert.equal(r.organization.organization_id, ORG);
      assert.equal(r.organization.organization_slug, 'example');
      assert.equal(r.organization.organization_name, 'Example');
      const ms = r.member_session;
      assert.equal(ms.member_id, r.member_id);
      assert.equal(ms.organization_id, ORG);
      assert.equal(ms.organization_slug, 'example');
      assert.equal(Date.parse(ms.expires_at) - Date.parse(ms.started_at), 60 * 60e3, 'B2B default: 60 minutes');
      assert.equal(ms.authentication_factors[0].trusted_auth_token_factor.token_id, jti);
      assert.ok(ms.roles.includes('stytch_member') && ms.roles.includes('reader'));
      assert.equal(r.session_token.length, 44);
      const p = jose.decodeJwt(r.session_jwt);
      assert.equal(p.sub, r.member_id);
      assert.deepEqual(p['https://stytch.com/organization'], { organization_id: ORG, slug: 'example' });

      const auth = await b2b.sessions.authenticate({ session_token: r.session_token });
      assert.equal(auth.member_session.member_session_id, ms.member_session_id);
      assert.equal(auth.member.member_id, r.member_id);
      assert.equal('member_id' in auth, false, 'B2BSessionsAuthenticateResponse has no top-level member_id');
      assert.equal(auth.member_session.member_id, r.member_id);
      assert.equal(auth.organization.organization_id, ORG);
      const local = await b2b.sessions.authenticateJwtLocal({ session_jwt: r.session_jwt });
      assert.equal(local.member_session_id ?? local.session_id, ms.member_session_id);

      // same member again via the organization_id in the body: only without JIT provisioning
      const r2 = await b2b.sessions.attest({ profile_id: P_B2B_NOJIT, token: await tat({ email: mail }), organization_id: ORG, session_duration_minutes: 15 });
      assert.equal(r2.member_id, r.member_id);
      // both, equal: accepted
      const r3 = await b2b.sessions.attest({ profile_id: P_B2B, token: await tat({ email: mail, extra: { org: ORG } }), organization_id: ORG });
      assert.equal(r3.member_id, r.member_id);
      // another member's session
      const other = await b2b.sessions.attest({ profile_id: P_B2B, token: await tat({ email: email(), extra: { org: ORG } }) });
      await expectStytchError(b2b.sessions.attest({ profile_id: P_B2B, token: await tat({ email: mail, extra: { org: ORG } }), session_token: other.session_token }),
        400, 'member_session_member_id_mismatch');
      // a consumer session is not a B2B session
      const c = await client.sessions.attest({ profile_id: P, token: await tat({ email: email() }), session_duration_minutes: 5 });
      await expectStytchError(b2b.sessions.authenticate({ session_token: c.session_token }), 404, 'session_not_found');
    });

    it('B2B errors', async () => {
      await expectStytchError(b2b.sessions.attest({ profile_id: P_B2B, token: await tat({ extra: { org: 'organization-test-nope' } }) }),
        404, 'organization_not_found');
      await expectStytchError(b2b.sessions.attest({ profile_id: P_B2B, token: await tat() }), 400, 'token_missing_organization_id_claim');
      // JIT provisioning on: the organization only in the body is refused, even for a known member
      await expectStytchError(b2b.sessions.attest({ profile_id: P_B2B, token: await tat({ email: email() }), organization_id: ORG }),
        400, 'token_missing_organization_id_claim', /JIT provisioning/);
      const known = await b2b.sessions.attest({ profile_id: P_B2B, token: await tat({ email: email(), extra: { org: ORG } }) });
      await expectStytchError(b2b.sessions.attest({ profile_id: P_B2B, token: await tat({ email: known.member.email_address }), organization_id: ORG }),
        400, 'token_missing_organization_id_claim');
      // JIT provisioning off: the body suffices, an unknown member is member_not_found
      await expectStytchError(b2b.sessions.attest({ profile_id: P_B2B_NOJIT, token: await tat({ email: email() }), organization_id: ORG }),
        404, 'member_not_found');
      await expectStytchError(b2b.sessions.attest({ profile_id: P_B2B, token: await tat({ extra: { org: ORG } }), organization_id: 'organization-test-other' }),
        400, 'organization_id_mismatch');
      await expectStytchError(b2b.sessions.attest({ profile_id: P, token: await tat({ extra: { org: ORG } }) }), 404, 'trusted_token_profile_not_found');
      await expectStytchError(client.sessions.attest({ profile_id: P_B2B, token: await tat() }), 404, 'trusted_token_profile_not_found');
    });
  });

  describe('control API', () => {
    it('records calls with redacted credentials and the token id', async () => {
      await emu.control('DELETE', '/calls');
      const jti = `logged-${uniq()}`;
      await client.sessions.attest({ profile_id: P, token: await tat({ jti, email: email() }) });
      const bad = new stytch.Client({ project_id: PROJECT_ID, secret: 'secret-test-nope', custom_base_url: emu.baseUrl });
      await assert.rejects(bad.sessions.attest({ profile_id: P, token: await tat() }));
      await assert.rejects(emu.request('POST', '/v1/sessions/attest', { body: {} }).then((r) => { throw new Error(String(r.status)); }));
      const { calls } = (await emu.control('GET', '/calls?path=/v1/sessions/attest')).body;
      assert.equal(calls.length, 3);
      const [ok, badCall, missing] = calls;
      assert.equal(ok.method, 'POST');
      assert.equal(ok.auth, 'ok');
      assert.equal(ok.status, 200);
      assert.equal(ok.outcome, 'ok');
      assert.equal(ok.token_id, jti);
      assert.equal(ok.body.profile_id, P);
      assert.equal(ok.headers.authorization, 'Basic <redacted>');
      assert.match(ok.headers['user-agent'], /^Stytch Node v/);
      assert.equal(ok.headers['content-type'], 'application/json');
      assert.ok(ok.seq < badCall.seq);
      assert.equal(badCall.auth, 'bad');
      assert.equal(badCall.status, 401);
      assert.equal(badCall.error_type, 'unauthorized_credentials');
      assert.equal(missing.auth, 'missing');
      const all = JSON.stringify((await emu.control('GET', '/calls')).body);
      assert.ok(!all.includes(SECRET) && !all.includes(Buffer.from(`${PROJECT_ID}:${SECRET}`).toString('base64')));
      await emu.control('DELETE', '/calls');
      assert.equal((await emu.control('GET', '/calls')).body.calls.length, 0);
    });

    it('health, state, clock-driven expiry, runtime config and reset', async () => {
      assert.deepEqual((await emu.control('GET', '/health')).body, { ok: true });
      const s0 = (await emu.control('GET', '/state')).body;
      assert.ok(s0.users > 0 && s0.sessions > 0);
      const a = await client.sessions.attest({ profile_id: P, token: await tat({ email: email() }), session_duration_minutes: 10 });
      await emu.control('POST', '/clock', { offset_seconds: 400 });
      const stillAlive = await client.sessions.authenticate({ session_jwt: a.session_jwt });
      assert.equal(stillAlive.session.session_id, a.session.session_id, 'expired session_jwt accepted while the session lives');
      await emu.control('POST', '/clock', { offset_seconds: 601 });
      await expectStytchError(client.sessions.authenticate({ session_token: a.session_token }), 404, 'session_not_found');
      await emu.control('POST', '/clock', { offset_seconds: 0 });

      const newProfile = 'trusted-auth-token-profile-test-runtime';
      const cfg = await emu.control('POST', '/config', {
        profiles: [...config.profiles, { ...config.profiles[0], profile_id: newProfile, issuer: 'https://idp2.example.com' }],
      });
      assert.equal(cfg.status, 200);
      const r = await client.sessions.attest({ profile_id: newProfile, token: await tat({ email: email(), iss: 'https://idp2.example.com' }) });
      assert.equal(r.status_code, 200);
      const badCfg = await emu.control('POST', '/config', { profiles: [{ profile_id: 'x' }] });
      assert.equal(badCfg.status, 400);
      await emu.control('POST', '/config', { profiles: config.profiles });
      await expectStytchError(client.sessions.attest({ profile_id: newProfile, token: await tat() }), 404, 'trusted_token_profile_not_found');

      const token = await tat({ email: email() });
      await client.sessions.attest({ profile_id: P, token });
      await emu.control('POST', '/faults', { mode: 'status', status: 500 });
      assert.equal((await emu.control('POST', '/reset')).status, 200);
      const s1 = (await emu.control('GET', '/state')).body;
      assert.deepEqual([s1.users, s1.sessions, s1.seen_token_ids, s1.calls, s1.faults], [0, 0, 0, 0, 0]);
      const again = await client.sessions.attest({ profile_id: P, token });
      assert.equal(again.status_code, 200, 'seen token ids and faults were cleared');
      assert.equal((await emu.control('GET', '/nope')).status, 404);
    });
  });

  describe('faults', () => {
    const ATTEST = '/v1/sessions/attest';
    const creds = () => `${PROJECT_ID}:${SECRET}`;
    const fault = async (spec) => {
      const r = await emu.control('POST', '/faults', spec);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.fault;
    };
    const attestRaw = (opts = {}) => emu.request('POST', ATTEST, { body: {}, auth: creds(), ...opts });
    const lastCall = async () => (await emu.control('GET', '/calls')).body.calls.at(-1);

    it('latency answers normally after the delay', async () => {
      await fault({ path: ATTEST, mode: 'latency', latency_ms: 400 });
      const t0 = Date.now();
      const r = await attestRaw();
      assert.ok(Date.now() - t0 >= 390);
      assert.equal(r.status, 400);
      assert.equal(JSON.parse(r.text).error_type, 'missing_profile_id');
      const c = await lastCall();
      assert.equal(c.fault, 'latency');
      assert.equal(c.outcome, 'error');
    });

    it('status answers with a Stytch error body, count limits it, path scopes it', async () => {
      await fault({ path: ATTEST, mode: 'status', status: 503, error_type: 'service_unavailable', count: 2 });
      for (let i = 0; i < 2; i++) {
        const r = await attestRaw();
        assert.equal(r.status, 503);
        const b = JSON.parse(r.text);
        assert.equal(b.status_code, 503);
        assert.equal(b.error_type, 'service_unavailable');
        assert.match(b.request_id, /^request-id-test-/);
        assert.equal(b.error_url, 'https://stytch.com/docs/api/errors/503#service_unavailable');
      }
      assert.equal((await attestRaw()).status, 400, 'fault used up');
      await fault({ path: '/v1/sessions/authenticate', mode: 'status', status: 500 });
      assert.equal((await attestRaw()).status, 400, 'other path unaffected');
      await expectStytchError(client.sessions.authenticate({ session_token: 'z'.repeat(44) }), 500, 'internal_server_error');
      const c = await lastCall();
      assert.equal(c.outcome, 'status');
      assert.equal(c.status, 500);
    });

    it('rate_limit sends 429 with Retry-After only when asked', async () => {
      await fault({ mode: 'rate_limit', retry_after: 7, count: 1 });
      let r = await attestRaw();
      assert.equal(r.status, 429);
      assert.equal(r.headers['retry-after'], '7');
      assert.equal(JSON.parse(r.text).error_type, 'too_many_requests');
      await fault({ mode: 'rate_limit', retry_after: null, count: 1 });
      r = await emu.request('GET', `/v1/sessions/jwks/${PROJECT_ID}`);
      assert.equal(r.status, 429, 'default: all Stytch paths');
      assert.equal(r.headers['retry-after'], undefined);
      await fault({ mode: 'rate_limit', count: 1 });
      await expectStytchError(client.sessions.attest({ profile_id: P, token: await tat() }), 429, 'too_many_requests');
    });

    it('malformed_json answers 200 with a body that is not JSON', async () => {
      await fault({ path: ATTEST, mode: 'malformed_json' });
      const r = await attestRaw();
      assert.equal(r.status, 200);
      assert.equal(r.error, null);
      assert.throws(() => JSON.parse(r.text));
      await assert.rejects(client.sessions.attest({ profile_id: P, token: await tat() }), (e) => e instanceof stytch.RequestError);
      assert.equal((await lastCall()).outcome, 'malformed_json');
    });

    it('truncated closes before Content-Length bytes', async () => {
      await fault({ path: ATTEST, mode: 'truncated' });
      const r = await attestRaw();
      assert.equal(r.status, 200);
      assert.ok(r.error, 'client notices the truncation');
      assert.ok(r.bytes > 0 && r.bytes < Number(r.headers['content-length']));
    });

    it('oversized pads a valid 200 answer to about 1 MB without changing the stored user', async () => {
      await fault({ path: ATTEST, mode: 'oversized', count: 1 });
      const mail = email();
      const r = await attestRaw({ body: { profile_id: P, token: await tat({ email: mail }) } });
      assert.equal(r.status, 200, r.text.slice(0, 300));
      assert.ok(r.bytes > 1_000_000 && r.bytes < 1_200_000);
      const b = JSON.parse(r.text);
      assert.ok(b.user.trusted_metadata.padding.length >= 1_000_000);
      assert.equal((await lastCall()).outcome, 'oversized');
      const again = await client.sessions.attest({ profile_id: P, token: await tat({ email: mail }) });
      assert.deepEqual(again.user.trusted_metadata, {});
    });

    it('reset_before_headers drops the connection without an answer', async () => {
      await fault({ path: ATTEST, mode: 'reset_before_headers' });
      const r = await attestRaw();
      assert.equal(r.status, null);
      assert.ok(r.error);
      const c = await lastCall();
      assert.equal(c.outcome, 'reset_before_headers');
      assert.equal(c.status, null);
    });

    it('reset_after_headers sends 200 headers then drops the connection', async () => {
      await fault({ path: ATTEST, mode: 'reset_after_headers' });
      const r = await attestRaw();
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], '4096');
      assert.ok(r.error);
      assert.equal(r.bytes, 0);
    });

    it('stall never answers until the client gives up', async () => {
      await fault({ path: ATTEST, mode: 'stall' });
      const t0 = Date.now();
      const r = await attestRaw({ timeoutMs: 800 });
      assert.equal(r.error, 'timeout');
      assert.equal(r.status, null);
      assert.ok(Date.now() - t0 >= 790);
      assert.equal((await lastCall()).outcome, 'stall');
      await emu.control('DELETE', '/faults');
      assert.equal((await attestRaw()).status, 400, 'DELETE /faults clears');
    });

    it('rejects bad fault specs', async () => {
      assert.equal((await emu.control('POST', '/faults', { mode: 'explode' })).status, 400);
      assert.equal((await emu.control('POST', '/faults', { mode: 'status', status: 200 })).status, 400);
      assert.equal((await emu.control('POST', '/faults', { mode: 'latency', count: 0 })).status, 400);
      assert.deepEqual((await emu.control('GET', '/faults')).body.faults, []);
    });
  });

  describe('logs', () => {
    it('log one line per request and never the secret or full tokens', async () => {
      const lines = emu.stderr.split('\n').filter((l) => / \/v1\//.test(l));
      assert.ok(lines.length > 20);
      assert.ok(lines.some((l) => /POST \/v1\/sessions\/attest 400 invalid_trusted_auth_token/.test(l)));
      assert.ok(!emu.stderr.includes(SECRET));
      for (const t of secretsSeen) assert.ok(!emu.stderr.includes(t), 'a full token reached the log');
    });
  });
}
