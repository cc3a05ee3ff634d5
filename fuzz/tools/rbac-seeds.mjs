// Writes the seeds of fuzz_rbac: Stytch-shaped RBAC policies (the
// emulator's default ones, one with duplicate roles and "*", the bounds),
// session JWT claims as Stytch issues them (consumer and B2B, with factors)
// and broken ones, blobs, and whole decisions.  Byte 0 of each seed is the
// harness's mode (see fuzz_rbac.c).
//
//   node fuzz/tools/rbac-seeds.mjs fuzz/corpus/fuzz_rbac
//
// No dependencies.  The seeds are committed; rerun only to refresh them.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const out = process.argv[2];
if (!out) throw new Error('usage: rbac-seeds.mjs DIR');
mkdirSync(out, { recursive: true });

const POLICY = 0, CLAIMS = 1, BLOB = 2, DECIDE = 3;
const ORG = 'organization-test-00000000-0000-0000-0000-000000000000';

const seed = (name, mode, ...parts) => {
  const bufs = [Buffer.from([mode])];
  parts.forEach((p, i) => {
    if (i) bufs.push(Buffer.from([0xff]));
    bufs.push(Buffer.isBuffer(p) ? p : Buffer.from(typeof p === 'string' ? p : JSON.stringify(p)));
  });
  writeFileSync(join(out, name), Buffer.concat(bufs));
};

const role = (role_id, permissions, description = '') => ({ role_id, description, permissions });
const perm = (resource_id, actions) => ({ resource_id, actions });
const answer = (policy) => ({ request_id: 'request-id-test-1', status_code: 200, policy });

const stytch = answer({
  resources: [{ resource_id: 'documents', description: '', actions: ['read', 'write', 'delete'] }],
  roles: [
    role('stytch_member', [perm('documents', ['read'])]),
    role('stytch_admin', [perm('documents', ['*']), perm('stytch.member', ['*'])]),
    role('editor', [perm('documents', ['read', 'write']), perm('images', ['upload'])]),
    role('editor', [perm('reports', ['export'])], 'the same id again'),
    role('nobody', []),
  ],
  scopes: [{ scope: 'read:documents', description: '', permissions: [perm('documents', ['read'])] }],
});
const consumer = answer({
  resources: [], scopes: [],
  roles: [role('stytch_user', []), role('reader', [perm('documents', ['read'])]), role('writer', [perm('documents', ['read', 'write'])])],
});

const factor = (type, delivery_method, at) => ({
  type, delivery_method, last_authenticated_at: at, created_at: at, updated_at: at,
  trusted_auth_token_factor: { token_id: 'jti-1' },
});
const session = (roles, factors, extra = {}) => ({
  aud: ['project-test-1'], exp: 1800000300, iat: 1800000000, nbf: 1800000000,
  iss: 'stytch.com/project-test-1', sub: 'member-test-1',
  'https://stytch.com/session': {
    id: 'member-session-test-1', started_at: '2027-01-15T08:00:00Z', last_accessed_at: '2027-01-15T08:00:00Z',
    expires_at: '2027-01-15T09:00:00Z', attributes: { ip_address: '', user_agent: '' },
    authentication_factors: factors, roles,
  },
  ...extra,
});
const tat = factor('trusted_auth_token', 'trusted_token_exchange', '2027-01-15T08:00:00Z');
const orgClaim = { 'https://stytch.com/organization': { organization_id: ORG, slug: 'example' } };
const b2b = session(['stytch_member', 'editor', 'ghost'], [tat, factor('totp', 'authenticator_app', '2027-01-15T08:10:00.123Z')], orgClaim);
const user = session(['stytch_user', 'reader'], [tat]);

seed('policy-b2b', POLICY, stytch);
seed('policy-consumer', POLICY, consumer);
seed('policy-empty', POLICY, { policy: { roles: [] } });
seed('policy-no-roles', POLICY, { policy: { resources: [] } });
seed('policy-dup-names', POLICY, '{"policy":{"roles":[]},"policy":{"roles":[]}}');
seed('policy-control', POLICY, answer({ roles: [role('a\nb', [])] }));
seed('policy-id-255', POLICY, answer({ roles: [role('r'.repeat(255), [perm('d'.repeat(255), ['a'.repeat(255)])])] }));
seed('policy-id-256', POLICY, answer({ roles: [role('r'.repeat(256), [])] }));
seed('policy-actions-257', POLICY, answer({ roles: [role('r', [perm('d', Array.from({ length: 257 }, (_, i) => `a${i}`))])] }));
seed('policy-wrong-types', POLICY, answer({ roles: [{ role_id: 'r', permissions: [{ resource_id: 'd', actions: 'read' }] }] }));

seed('claims-b2b', CLAIMS, Buffer.from([255]), b2b);
seed('claims-consumer', CLAIMS, Buffer.from([16]), user);
seed('claims-no-roles', CLAIMS, Buffer.from([64]), session(undefined, []));
seed('claims-roles-string', CLAIMS, Buffer.from([64]), session('admin', []));
seed('claims-odd-roles', CLAIMS, Buffer.from([200]), session(['a', 1, null, '', 'b\u0001', 'a', 'caf\u00e9'], [{ type: 'otp' }, 7, { type: 'otp', delivery_method: null }]));
seed('claims-org-odd', CLAIMS, Buffer.from([100]), session([], [], { 'https://stytch.com/organization': { organization_id: 7, slug: 'a\tb' } }));
seed('claims-65-roles', CLAIMS, Buffer.from([0]), session(Array.from({ length: 65 }, (_, i) => `role${i}`), []));
seed('claims-20-factors', CLAIMS, Buffer.from([0]), session([], Array.from({ length: 20 }, (_, i) => factor(`t${i}`, 'm', '2027-01-15T08:00:00Z'))));

seed('blob-empty', BLOB, Buffer.from([1, 0, 0, 0]));
seed('blob-b2b', BLOB, Buffer.concat([
  Buffer.from([1, 3, 1, 1, ORG.length]), Buffer.from(ORG), Buffer.from([7]), Buffer.from('example'),
  Buffer.from([5]), Buffer.from('admin'), Buffer.from([0x40, 0x1f, 0x2c, 0x6b, 0, 0, 0, 0, 4]), Buffer.from('totp'),
  Buffer.from([17]), Buffer.from('authenticator_app'),
]));
seed('blob-truncated', BLOB, Buffer.from([1, 1, 0, 0, 40, 0x61]));

seed('decide-allow', DECIDE, stytch, b2b, ORG, 'documents', 'write');
seed('decide-tenancy', DECIDE, stytch, b2b, 'organization-test-other', 'documents', 'read');
seed('decide-slug', DECIDE, stytch, b2b, 'example', 'documents', 'read');
seed('decide-denied', DECIDE, stytch, b2b, ORG, 'images', 'delete');
seed('decide-star', DECIDE, stytch, session(['stytch_admin'], [], orgClaim), ORG, 'documents', 'anything');
seed('decide-consumer', DECIDE, consumer, user, '', 'documents', 'read');
seed('decide-no-org', DECIDE, consumer, user, ORG, 'documents', 'read');
