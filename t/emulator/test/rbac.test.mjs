// RBAC in the emulator, driven by Stytch's official Node SDK: the policy
// endpoints (GET /v1/rbac/policy, GET /v1/b2b/rbac/policy, and the
// organization policy the B2B SDK asks for), the policy set in the config
// and changed at run time, the roles and factors the sessions carry, and
// the SDK's local authorization check (authenticateJwtLocal with an
// authorization_check) against the emulator's sessions.
//
// Like sdk.test.mjs, it re-runs itself with NODE_EXTRA_CA_CERTS set to a CA
// made in a temp dir, so that the SDK trusts the emulator.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { ensureCerts } from '../lib/certs.mjs';

const CHILD_ENV = 'STYTCH_EMULATOR_RBAC_TEST_DIR';

if (!process.env[CHILD_ENV]) {
  const dir = mkdtempSync(join(tmpdir(), 'stytch-emulator-rbac-'));
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
  const { describe, it, before, after } = await import('node:test');
  const assert = (await import('node:assert/strict')).default;
  const { default: stytch } = await import('stytch');
  const jose = await import('jose');
  const { startEmulator, mintTat } = await import('../testlib/harness.mjs');

  const PROJECT_ID = 'project-test-00000000-0000-0000-0000-000000000000';
  const SECRET = `secret-test-${randomUUID().replaceAll('-', '')}`;
  const AUTH = `${PROJECT_ID}:${SECRET}`;
  const P = 'trusted-auth-token-profile-test-rbac';
  const P_B2B = 'trusted-auth-token-profile-test-rbac-b2b';
  const ORG = 'organization-test-11111111-1111-1111-1111-111111111111';
  const ORG2 = 'organization-test-22222222-2222-2222-2222-222222222222';
  const MAPPING = { email: 'email', token_id: 'jti', external_user_id: 'sub', role_ids: 'assignments' };

  const perm = (resource_id, actions) => ({ resource_id, actions });
  const role = (role_id, permissions) => ({ role_id, description: `role ${role_id}`, permissions });
  const RESOURCES = [{ resource_id: 'documents', description: 'Documents', actions: ['read', 'write', 'delete'] }];
  const POLICY = {
    resources: RESOURCES,
    roles: [
      role('stytch_user', [perm('documents', ['read'])]),
      role('reader', [perm('documents', ['read'])]),
      role('writer', [perm('documents', ['read', 'write'])]),
      role('admin', [perm('documents', ['*'])]),
    ],
    scopes: [],
  };
  const B2B_POLICY = {
    resources: RESOURCES,
    roles: [
      role('stytch_member', [perm('documents', ['read'])]),
      role('stytch_admin', [perm('documents', ['*'])]),
      role('writer', [perm('documents', ['read', 'write'])]),
    ],
    scopes: [{ scope: 'read:documents', description: 'Read', permissions: [perm('documents', ['read'])] }],
  };

  let emu; let key; let client; let b2b;
  const uniq = () => randomUUID().slice(0, 8);
  const email = () => `user-${uniq()}@example.com`;
  const tat = (opts) => mintTat(key.privateKey, opts);
  const newClients = () => {
    // a client caches the policy for 5 minutes: a new one sees a new policy
    client = new stytch.Client({ project_id: PROJECT_ID, secret: SECRET, custom_base_url: emu.baseUrl });
    b2b = new stytch.B2BClient({ project_id: PROJECT_ID, secret: SECRET, custom_base_url: emu.baseUrl });
  };
  const rejectsWith = (promise, code) => assert.rejects(promise, (e) => {
    assert.ok(e instanceof stytch.ClientError, `expected ClientError, got ${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
  const consumerSession = async (assignments) => {
    const r = await client.sessions.attest({
      profile_id: P, token: await tat({ email: email(), extra: { assignments } }), session_duration_minutes: 30,
    });
    return r;
  };
  const memberSession = async (assignments, org = ORG) => b2b.sessions.attest({
    profile_id: P_B2B, token: await tat({ email: email(), extra: { assignments, org } }), session_duration_minutes: 30,
  });

  before(async () => {
    key = await jose.generateKeyPair('RS256', { extractable: true });
    const pem = await jose.exportSPKI(key.publicKey);
    const base = {
      issuer: 'https://auth.example.com', audience: 'https://api.example.com', attribute_mapping: MAPPING,
      jit_provisioning: true, public_keys: [pem],
    };
    emu = await startEmulator(dir, {
      project_id: PROJECT_ID,
      secret: SECRET,
      rbac_policy: POLICY,
      b2b_rbac_policy: B2B_POLICY,
      profiles: [
        { ...base, profile_id: P },
        { ...base, profile_id: P_B2B, b2b: true, attribute_mapping: { ...MAPPING, organization_id: 'org', external_member_id: 'sub' } },
      ],
      organizations: [
        { organization_id: ORG, organization_slug: 'example', organization_name: 'Example' },
        { organization_id: ORG2, organization_slug: 'other', organization_name: 'Other' },
      ],
    });
    newClients();
  });

  after(async () => {
    if (emu) assert.equal((await emu.stop()).code, 0);
  });

  describe('policy endpoints', () => {
    it('serve the configured policies with Basic credentials', async () => {
      for (const [path, want] of [['/v1/rbac/policy', POLICY], ['/v1/b2b/rbac/policy', B2B_POLICY]]) {
        const r = await emu.request('GET', path, { auth: AUTH });
        assert.equal(r.status, 200, r.text);
        assert.match(r.headers['content-type'], /^application\/json/);
        const body = JSON.parse(r.text);
        assert.equal(body.status_code, 200);
        assert.match(body.request_id, /^request-id-test-[0-9a-f-]{36}$/);
        assert.deepEqual(body.policy, want);
      }
    });

    it('refuse missing or wrong credentials, other methods and unknown routes', async () => {
      for (const path of ['/v1/rbac/policy', '/v1/b2b/rbac/policy', `/v1/b2b/rbac/organizations/${ORG}`]) {
        for (const auth of [undefined, `${PROJECT_ID}:wrong`]) {
          const r = await emu.request('GET', path, { auth });
          assert.equal(r.status, 401, path);
          assert.equal(JSON.parse(r.text).error_type, 'unauthorized_credentials');
        }
        const post = await emu.request('POST', path, { auth: AUTH, body: {} });
        assert.equal(post.status, 405, path);
        assert.equal(JSON.parse(post.text).error_type, 'method_not_allowed');
      }
      for (const path of ['/v1/rbac/organizations/x', '/v1/rbac/policy/x', '/v1/b2b/rbac/policies']) {
        const r = await emu.request('GET', path, { auth: AUTH });
        assert.equal(r.status, 404, path);
        assert.equal(JSON.parse(r.text).error_type, 'route_not_found');
      }
    });

    it('answer the organization policy the B2B SDK asks for (no organization roles)', async () => {
      const r = await emu.request('GET', `/v1/b2b/rbac/organizations/${ORG}`, { auth: AUTH });
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.text).org_policy, { roles: [] });
      const unknown = await emu.request('GET', '/v1/b2b/rbac/organizations/organization-test-nope', { auth: AUTH });
      assert.equal(unknown.status, 404);
      assert.equal(JSON.parse(unknown.text).error_type, 'organization_not_found');
    });

    it('are read by the SDK (rbac.policy(), b2b rbac.policy())', async () => {
      const c = await client.rbac.policy();
      assert.equal(c.status_code, 200);
      assert.deepEqual(c.policy, POLICY);
      const b = await b2b.rbac.policy();
      assert.deepEqual(b.policy, B2B_POLICY);
      const o = await b2b.rbac.organizations.getOrgPolicy({ organization_id: ORG });
      assert.deepEqual(o.org_policy, { roles: [] });
    });

    it('change at run time, show in GET /config, and refuse a malformed policy', async () => {
      const next = { resources: [], roles: [role('reader', [perm('images', ['view'])])], scopes: [] };
      try {
        const set = await emu.control('POST', '/config', { rbac_policy: next });
        assert.equal(set.status, 200, JSON.stringify(set.body));
        assert.deepEqual((await client.rbac.policy()).policy, next);
        assert.deepEqual((await emu.control('GET', '/config')).body.rbac_policy, next);
        assert.deepEqual((await b2b.rbac.policy()).policy, B2B_POLICY, 'the other kind is untouched');

        for (const bad of [[], { roles: {} }, { roles: [{ permissions: [] }] }, { roles: [role('r', [{ resource_id: 'd', actions: 'read' }])] },
          { roles: [], resources: {} }, { roles: [role('r', [perm(7, [])])] }]) {
          const r = await emu.control('POST', '/config', { rbac_policy: bad });
          assert.equal(r.status, 400, JSON.stringify(bad));
          assert.equal(r.body.ok, false);
        }
        assert.deepEqual((await client.rbac.policy()).policy, next, 'nothing changed');

        // null: Stytch's default roles and rbac_roles, without permissions
        await emu.control('POST', '/config', { rbac_policy: null, b2b_rbac_policy: null, rbac_roles: ['viewer'] });
        assert.deepEqual((await client.rbac.policy()).policy, {
          resources: [], scopes: [],
          roles: ['stytch_user', 'viewer'].map((role_id) => ({ role_id, description: '', permissions: [] })),
        });
        assert.deepEqual((await b2b.rbac.policy()).policy.roles.map((r) => r.role_id), ['stytch_member', 'stytch_admin', 'viewer']);
      } finally {
        await emu.control('POST', '/config', { rbac_policy: POLICY, b2b_rbac_policy: B2B_POLICY, rbac_roles: null });
      }
    });

    it('without rbac_roles, the policy\'s roles are the ones attest accepts', async () => {
      await assert.rejects(consumerSession(['reader', 'editor']), (e) => e.error_type === 'invalid_rbac_role_id');
      await assert.rejects(memberSession(['reader']), (e) => e.error_type === 'invalid_rbac_role_id');
      const ok = await memberSession(['writer', 'stytch_admin']);
      assert.deepEqual(ok.member_session.roles, ['stytch_member', 'writer', 'stytch_admin']);
    });
  });

  describe('sessions carry what the checks read', () => {
    it('consumer: roles from the profile\'s role_ids mapping and stytch_user, factors', async () => {
      const r = await consumerSession(['reader', 'writer']);
      assert.deepEqual(r.session.roles, ['stytch_user', 'reader', 'writer']);
      const claims = jose.decodeJwt(r.session_jwt);
      const sc = claims['https://stytch.com/session'];
      assert.deepEqual(sc.roles, ['stytch_user', 'reader', 'writer']);
      assert.equal(claims['https://stytch.com/organization'], undefined);
      assert.equal(sc.authentication_factors.length, 1);
      const f = sc.authentication_factors[0];
      assert.equal(f.type, 'trusted_auth_token');
      assert.equal(f.delivery_method, 'trusted_token_exchange');
      assert.match(f.last_authenticated_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.ok(Math.abs(Date.parse(f.last_authenticated_at) / 1000 - claims.iat) <= 1);
      assert.equal(jose.decodeProtectedHeader(r.session_jwt).typ, 'JWT');

      // no mapping claim in the token: the default role only
      const none = await client.sessions.attest({
        profile_id: P, token: await tat({ email: email(), extra: { assignments: undefined } }), session_duration_minutes: 5,
      });
      assert.deepEqual(jose.decodeJwt(none.session_jwt)['https://stytch.com/session'].roles, ['stytch_user']);
    });

    it('B2B: the member\'s roles (stytch_member first) and the organization claim', async () => {
      const r = await memberSession(['writer']);
      assert.deepEqual(r.member_session.roles, ['stytch_member', 'writer']);
      assert.deepEqual(r.member.roles.map((x) => x.role_id), ['stytch_member', 'writer']);
      const claims = jose.decodeJwt(r.session_jwt);
      assert.deepEqual(claims['https://stytch.com/session'].roles, ['stytch_member', 'writer']);
      assert.deepEqual(claims['https://stytch.com/organization'], { organization_id: ORG, slug: 'example' });
      const f = claims['https://stytch.com/session'].authentication_factors[0];
      assert.deepEqual([f.type, f.delivery_method], ['trusted_auth_token', 'trusted_token_exchange']);
      // authenticate hands the same roles on, in the JSON and the new JWT
      const a = await b2b.sessions.authenticate({ session_token: r.session_token });
      assert.deepEqual(a.member_session.roles, ['stytch_member', 'writer']);
      assert.deepEqual(jose.decodeJwt(a.session_jwt)['https://stytch.com/session'].roles, ['stytch_member', 'writer']);
    });
  });

  describe('the SDK\'s authenticateJwtLocal with authorization_check', () => {
    it('consumer: allows what a role permits, denies the rest as invalid_permissions', async () => {
      newClients();
      await emu.control('DELETE', '/calls');
      const reader = await consumerSession(['reader']);
      const s = await client.sessions.authenticateJwtLocal({
        session_jwt: reader.session_jwt, authorization_check: { resource_id: 'documents', action: 'read' },
      });
      assert.equal(s.session_id, reader.session.session_id);
      assert.deepEqual(s.roles, ['stytch_user', 'reader']);
      await rejectsWith(client.sessions.authenticateJwtLocal({
        session_jwt: reader.session_jwt, authorization_check: { resource_id: 'documents', action: 'write' },
      }), 'invalid_permissions');
      await rejectsWith(client.sessions.authenticateJwtLocal({
        session_jwt: reader.session_jwt, authorization_check: { resource_id: 'images', action: 'read' },
      }), 'invalid_permissions');

      const admin = await consumerSession(['admin']);
      await client.sessions.authenticateJwtLocal({
        session_jwt: admin.session_jwt, authorization_check: { resource_id: 'documents', action: 'shred' },
      });

      // the SDK asked the emulator for the policy once (it caches it)
      const calls = (await emu.control('GET', '/calls?path=/v1/rbac/policy')).body.calls;
      assert.equal(calls.length, 1);
      assert.equal(calls[0].auth, 'ok');
      assert.equal(calls[0].status, 200);
    });

    it('B2B: tenancy first, then permissions', async () => {
      newClients();
      const w = await memberSession(['writer']);
      const ms = await b2b.sessions.authenticateJwtLocal({
        session_jwt: w.session_jwt, authorization_check: { organization_id: ORG, resource_id: 'documents', action: 'write' },
      });
      assert.equal(ms.organization_id, ORG);
      assert.equal(ms.organization_slug, 'example');
      await rejectsWith(b2b.sessions.authenticateJwtLocal({
        session_jwt: w.session_jwt, authorization_check: { organization_id: ORG, resource_id: 'documents', action: 'delete' },
      }), 'invalid_permissions');
      // another organization: tenancy_mismatch even for what the role permits
      await rejectsWith(b2b.sessions.authenticateJwtLocal({
        session_jwt: w.session_jwt, authorization_check: { organization_id: ORG2, resource_id: 'documents', action: 'read' },
      }), 'tenancy_mismatch');
      // the slug is not the id
      await rejectsWith(b2b.sessions.authenticateJwtLocal({
        session_jwt: w.session_jwt, authorization_check: { organization_id: 'example', resource_id: 'documents', action: 'read' },
      }), 'tenancy_mismatch');

      const other = await memberSession(['stytch_admin'], ORG2);
      await b2b.sessions.authenticateJwtLocal({
        session_jwt: other.session_jwt, authorization_check: { organization_id: ORG2, resource_id: 'documents', action: 'delete' },
      });
      const orgCalls = (await emu.control('GET', `/calls?path=/v1/b2b/rbac/organizations/${ORG2}`)).body.calls;
      assert.ok(orgCalls.length >= 1, 'the B2B SDK asks for the organization policy');
    });

    it('a new policy reaches a new client', async () => {
      const w = await memberSession(['writer']);
      const check = { organization_id: ORG, resource_id: 'documents', action: 'delete' };
      newClients();
      await rejectsWith(b2b.sessions.authenticateJwtLocal({ session_jwt: w.session_jwt, authorization_check: check }), 'invalid_permissions');
      try {
        await emu.control('POST', '/config', {
          b2b_rbac_policy: { ...B2B_POLICY, roles: [...B2B_POLICY.roles, role('writer', [perm('documents', ['delete'])])] },
        });
        newClients();
        await b2b.sessions.authenticateJwtLocal({ session_jwt: w.session_jwt, authorization_check: check });
      } finally {
        await emu.control('POST', '/config', { b2b_rbac_policy: B2B_POLICY });
      }
    });
  });
}
