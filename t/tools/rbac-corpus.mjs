// The corpus of the RBAC differential test: authorization cases that the
// official stytch SDK (rbac-oracle.mjs) and the module's decision
// (rbac-cases.c) must decide alike.
//
//   node rbac-corpus.mjs [--random N] [--seed S] > cases.jsonl
//
// One JSON object a line:
//   {"id", "kind": "consumer"|"b2b", "note",
//    "policy": {resources, roles, scopes}       (GET .../rbac/policy's "policy")
//    "claims": {...}                            (the session JWT's claims
//                                                besides iss, aud, sub, iat,
//                                                nbf, exp, which the oracle adds)
//    "check": {"organization_id"?, "resource_id", "action"}}
//
// Hand-written cases first (the edge cases of the SDKs' rbac_local: "*",
// unknown roles, several roles, duplicate role ids, exact resource ids,
// tenancy by id and never by slug, missing claims), then N random ones
// (default 240) drawn with a fixed seed, so the corpus is the same on every
// run: Stytch-shaped policies and sessions built from small pools of role
// ids, resources and actions, with unknown roles, odd role entries, "*"
// actions, matching and mismatching organizations, and claims left out.
//
// Left out on purpose, where the module is stricter than the SDK and says
// so (see ngx_http_stytch_tat_rbac.h): roles that are not an array (the
// SDK's String.prototype.includes() would match a substring), more than 64
// roles, and ids with control characters or over 255 bytes (the module
// refuses such a policy, or drops such a role).  Stytch issues none of them.
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export const ORG_A = 'organization-test-aaaaaaaa-0000-0000-0000-000000000000';
export const ORG_B = 'organization-test-bbbbbbbb-0000-0000-0000-000000000000';
export const ORGS = [
  { organization_id: ORG_A, organization_slug: 'acme', organization_name: 'Acme' },
  { organization_id: ORG_B, organization_slug: 'globex', organization_name: 'Globex' },
];

const SESSION = 'https://stytch.com/session';
const ORG = 'https://stytch.com/organization';

// a small PRNG (mulberry32): the same corpus on every machine
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  const pick = (arr) => arr[int(arr.length)];
  const chance = (p) => next() < p;
  const some = (arr, max) => {
    const n = int(max + 1);
    const out = [];
    for (let i = 0; i < n; i++) out.push(pick(arr));
    return out;
  };
  return { int, pick, chance, some };
}

const perm = (resource_id, actions) => ({ resource_id, actions });
const role = (role_id, permissions, description = '') => ({ role_id, description, permissions });
const policyOf = (roles, resources = []) => ({ resources, roles, scopes: [] });

const factor = (at) => ({
  type: 'trusted_auth_token', delivery_method: 'trusted_token_exchange',
  last_authenticated_at: at, created_at: at, updated_at: at,
  trusted_auth_token_factor: { token_id: 'token-id-rbac' },
});

// the claims as Stytch issues them; roles undefined: no "roles" member
function claimsOf(kind, roles, org, { session = true } = {}) {
  const c = {};
  if (session) {
    const s = {
      id: `${kind === 'b2b' ? 'member-session' : 'session'}-test-rbac`,
      started_at: '2027-01-15T08:00:00Z',
      last_accessed_at: '2027-01-15T08:00:00Z',
      expires_at: '2099-01-15T09:00:00Z',
      attributes: { ip_address: '', user_agent: '' },
      authentication_factors: [factor('2027-01-15T08:00:00Z')],
    };
    if (roles !== undefined) s.roles = roles;
    c[SESSION] = s;
  }
  if (org !== undefined) c[ORG] = org;
  return c;
}

const orgClaim = (id, slug) => {
  const o = {};
  if (id !== undefined) o.organization_id = id;
  if (slug !== undefined) o.slug = slug;
  return o;
};

// ---- the fixed policies -----------------------------------------------------

const DOCS = [
  { resource_id: 'documents', description: 'Documents', actions: ['read', 'write', 'delete'] },
  { resource_id: 'images', description: 'Images', actions: ['read', 'upload'] },
];

export const POLICIES = {
  // what a project's policy looks like, with the SDKs' corner cases in it
  app: (kind) => policyOf([
    role(kind === 'b2b' ? 'stytch_member' : 'stytch_user', [perm('documents', ['read'])]),
    ...(kind === 'b2b' ? [role('stytch_admin', [perm('documents', ['*']), perm('stytch.member', ['*'])])] : []),
    role('reader', [perm('documents', ['read']), perm('images', ['read'])]),
    role('writer', [perm('documents', ['read', 'write'])]),
    role('editor', [perm('documents', ['read', 'write']), perm('images', ['read', 'upload'])]),
    role('admin', [perm('documents', ['*']), perm('images', ['*'])]),
    role('auditor', [perm('reports', ['export']), perm('documents', ['audit'])]),
    role('writer', [perm('images', ['upload'])], 'the same role id again'),
    role('nobody', []),
    role('blank', [perm('documents', [])]),
    role('wild-resource', [perm('*', ['read'])]),
  ], DOCS),
  // Stytch's reserved resources (dots in ids) and roles with only "*"
  stytch: (kind) => policyOf([
    role(kind === 'b2b' ? 'stytch_member' : 'stytch_user', [perm('stytch.self', ['*'])]),
    role('stytch_admin', [perm('stytch.organization', ['*']), perm('stytch.member', ['*']), perm('stytch.sso', ['*'])]),
    role('support', [perm('stytch.member', ['search', 'update.info.name'])]),
  ]),
  empty: () => policyOf([]),
};

// ---- the hand-written cases -------------------------------------------------

function handwritten() {
  const out = [];
  const add = (kind, note, policy, claims, check) => out.push({ kind, note, policy, claims, check });
  const c = (resource_id, action, organization_id) => (organization_id === undefined
    ? { resource_id, action } : { organization_id, resource_id, action });

  for (const kind of ['consumer', 'b2b']) {
    const P = POLICIES.app(kind);
    const base = kind === 'b2b' ? 'stytch_member' : 'stytch_user';
    const org = kind === 'b2b' ? orgClaim(ORG_A, 'acme') : undefined;
    const o = kind === 'b2b' ? ORG_A : undefined;
    const cl = (roles) => claimsOf(kind, roles, org);

    add(kind, 'default role reads', P, cl([base]), c('documents', 'read', o));
    add(kind, 'default role cannot write', P, cl([base]), c('documents', 'write', o));
    add(kind, 'writer writes', P, cl([base, 'writer']), c('documents', 'write', o));
    add(kind, 'writer cannot delete', P, cl([base, 'writer']), c('documents', 'delete', o));
    add(kind, 'second writer entry grants upload', P, cl(['writer']), c('images', 'upload', o));
    add(kind, '"*" grants any action', P, cl(['admin']), c('documents', 'shred', o));
    add(kind, '"*" grants the empty action', P, cl(['admin']), c('documents', '', o));
    add(kind, '"*" grants the action "*"', P, cl(['admin']), c('images', '*', o));
    add(kind, 'action "*" is not every action', P, cl(['writer']), c('documents', '*', o));
    add(kind, 'empty action without "*"', P, cl(['writer']), c('documents', '', o));
    add(kind, 'resource "*" is a resource id, not a wildcard', P, cl(['wild-resource']), c('anything', 'read', o));
    add(kind, 'resource "*" matches itself', P, cl(['wild-resource']), c('*', 'read', o));
    add(kind, 'resource ids are exact (prefix)', P, cl(['admin']), c('documents/42', 'read', o));
    add(kind, 'resource ids are exact (case)', P, cl(['admin']), c('Documents', 'read', o));
    add(kind, 'actions are exact (case)', P, cl(['reader']), c('documents', 'Read', o));
    add(kind, 'unknown role grants nothing', P, cl(['ghost']), c('documents', 'read', o));
    add(kind, 'role ids are exact (case)', P, cl(['ADMIN']), c('documents', 'read', o));
    add(kind, 'role ids are exact (space)', P, cl(['admin ']), c('documents', 'read', o));
    add(kind, 'unknown and known roles', P, cl(['ghost', 'reader', 'phantom']), c('images', 'read', o));
    add(kind, 'several roles, one grants', P, cl([base, 'reader', 'auditor']), c('reports', 'export', o));
    add(kind, 'several roles, none grants', P, cl([base, 'reader', 'auditor']), c('reports', 'delete', o));
    add(kind, 'role without permissions', P, cl(['nobody']), c('documents', 'read', o));
    add(kind, 'permission with no actions', P, cl(['blank']), c('documents', 'read', o));
    add(kind, 'duplicate roles in the session', P, cl(['reader', 'reader', 'reader']), c('documents', 'read', o));
    add(kind, 'non-string roles are ignored', P, cl([7, null, { role_id: 'admin' }, ['admin'], 'reader']), c('documents', 'read', o));
    add(kind, 'non-string roles grant nothing', P, cl([7, null, { role_id: 'admin' }, ['admin']]), c('documents', 'read', o));
    add(kind, 'empty role id', P, cl(['']), c('documents', 'read', o));
    add(kind, 'no roles', P, cl([]), c('documents', 'read', o));
    add(kind, 'missing roles claim', P, cl(undefined), c('documents', 'read', o));
    add(kind, 'null roles claim', P, cl(null), c('documents', 'read', o));
    add(kind, 'empty policy', POLICIES.empty(kind), cl(['admin']), c('documents', 'read', o));
    add(kind, 'empty policy, no roles claim', POLICIES.empty(kind), cl(undefined), c('documents', 'read', o));
    add(kind, 'Stytch resources: default role on stytch.self', POLICIES.stytch(kind), cl([base]), c('stytch.self', 'update', o));
    add(kind, 'Stytch resources: support searches', POLICIES.stytch(kind), cl(['support']), c('stytch.member', 'search', o));
    add(kind, 'Stytch resources: dotted action', POLICIES.stytch(kind), cl(['support']), c('stytch.member', 'update.info.name', o));
    add(kind, 'Stytch resources: no prefix match', POLICIES.stytch(kind), cl(['support']), c('stytch.member', 'update.info', o));
    add(kind, 'unicode role and resource', policyOf([role('r\u00f4le', [perm('d\u00f6cs', ['l\u00e9se'])])]),
      cl(['r\u00f4le']), c('d\u00f6cs', 'l\u00e9se', o));
    add(kind, 'unicode role, other normalization', policyOf([role('r\u00f4le', [perm('docs', ['read'])])]),
      cl(['ro\u0302le']), c('docs', 'read', o));
  }

  // tenancy, B2B only
  const P = POLICIES.app('b2b');
  const cl = (org, roles = ['stytch_member', 'admin']) => claimsOf('b2b', roles, org);
  const add2 = (note, claims, check) => add('b2b', note, P, claims, check);
  add2('same organization', cl(orgClaim(ORG_A, 'acme')), c('documents', 'delete', ORG_A));
  add2('another organization, permission granted there', cl(orgClaim(ORG_A, 'acme')), c('documents', 'read', ORG_B));
  add2('another organization, no permission either', cl(orgClaim(ORG_A, 'acme'), ['ghost']), c('documents', 'read', ORG_B));
  add2('the slug is not the id', cl(orgClaim(ORG_A, 'acme')), c('documents', 'read', 'acme'));
  add2('the id in other case', cl(orgClaim(ORG_A, 'acme')), c('documents', 'read', ORG_A.toUpperCase()));
  add2('the id with a trailing space', cl(orgClaim(ORG_A, 'acme')), c('documents', 'read', `${ORG_A} `));
  add2('same organization, no permission', cl(orgClaim(ORG_B, 'globex'), ['stytch_member']), c('documents', 'write', ORG_B));
  add2('missing organization claim', cl(undefined), c('documents', 'read', ORG_A));
  add2('organization claim without an id', cl(orgClaim(undefined, 'acme')), c('documents', 'read', ORG_A));
  add2('organization claim with a null id', cl({ organization_id: null, slug: 'acme' }), c('documents', 'read', ORG_A));
  add2('organization claim without a slug', cl(orgClaim(ORG_A, undefined)), c('documents', 'read', ORG_A));
  add2('missing organization claim and roles', claimsOf('b2b', undefined, undefined), c('documents', 'read', ORG_A));
  add2('missing session claim', claimsOf('b2b', undefined, orgClaim(ORG_A, 'acme'), { session: false }), c('documents', 'read', ORG_A));
  add('consumer', 'missing session claim', POLICIES.app('consumer'), claimsOf('consumer', undefined, undefined, { session: false }),
    c('documents', 'read'));
  add('consumer', 'an organization claim does not matter to a consumer check', POLICIES.app('consumer'),
    claimsOf('consumer', ['reader'], orgClaim(ORG_B, 'globex')), c('documents', 'read'));

  return out;
}

// ---- the random cases ------------------------------------------------------

const ROLE_POOL = ['reader', 'writer', 'editor', 'admin', 'auditor', 'billing', 'support', 'owner'];
const UNKNOWN_ROLES = ['ghost', 'Reader', 'writer ', 'stytch_admin2', ''];
const RESOURCES = ['documents', 'images', 'reports', 'billing', 'stytch.member'];
const ACTIONS = ['read', 'write', 'delete', 'export', 'upload'];

function randomPolicy(r, kind) {
  const roles = [];
  const ids = [kind === 'b2b' ? 'stytch_member' : 'stytch_user', ...ROLE_POOL];
  if (kind === 'b2b') ids.push('stytch_admin');
  for (const id of ids) {
    if (!r.chance(0.8)) continue;
    const perms = [];
    for (let i = r.int(4); i > 0; i--) {
      const actions = r.chance(0.2) ? ['*'] : [...new Set(r.some(ACTIONS, 3))];
      if (r.chance(0.1)) actions.push('*');
      perms.push(perm(r.pick(RESOURCES), actions));
    }
    roles.push(role(id, perms));
    if (r.chance(0.1)) roles.push(role(id, [perm(r.pick(RESOURCES), [r.pick(ACTIONS)])], 'again'));
  }
  // shuffle: the order of roles must not matter
  for (let i = roles.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [roles[i], roles[j]] = [roles[j], roles[i]];
  }
  return policyOf(roles, RESOURCES.map((resource_id) => ({ resource_id, description: '', actions: ACTIONS })));
}

function randomCase(r, kind, policies) {
  const policy = r.pick(policies);
  const ids = [kind === 'b2b' ? 'stytch_member' : 'stytch_user', ...ROLE_POOL];
  let roles = [...new Set(r.some(ids, 3))];
  if (r.chance(0.3)) roles.push(r.pick(UNKNOWN_ROLES));
  if (r.chance(0.05)) roles.push(r.pick([7, null, true, { role_id: 'admin' }]));
  if (r.chance(0.05)) roles = undefined;          // no roles member at all
  let org;
  let orgId;
  if (kind === 'b2b') {
    const mine = r.pick(ORGS);
    org = orgClaim(mine.organization_id, mine.organization_slug);
    if (r.chance(0.05)) org = undefined;
    else if (r.chance(0.05)) org = orgClaim(undefined, mine.organization_slug);
    orgId = r.chance(0.7) ? mine.organization_id : r.pick([ORG_A, ORG_B, mine.organization_slug]);
  }
  const check = {
    resource_id: r.chance(0.9) ? r.pick(RESOURCES) : r.pick(['unknown', '*', 'Documents']),
    action: r.chance(0.9) ? r.pick(ACTIONS) : r.pick(['*', '', 'READ', 'admin']),
  };
  // half of the checks ask for what a permission of the policy names, so
  // that roles grant as often as they do not
  const mine = policy.roles.filter((x) => r.chance(0.25) || (Array.isArray(roles) && roles.includes(x.role_id)));
  const perms = mine.flatMap((x) => x.permissions).filter((p) => p.actions.length);
  if (perms.length && r.chance(0.6)) {
    const p = r.pick(perms);
    check.resource_id = p.resource_id;
    check.action = p.actions.includes('*') && r.chance(0.5) ? r.pick(ACTIONS) : r.pick(p.actions);
  }
  if (kind === 'b2b') check.organization_id = orgId;
  return {
    kind,
    note: 'random',
    policy,
    claims: claimsOf(kind, roles, org),
    check: kind === 'b2b' ? { organization_id: check.organization_id, resource_id: check.resource_id, action: check.action } : check,
  };
}

export function corpus({ random = 240, seed = 19 } = {}) {
  const r = rng(seed);
  const cases = handwritten();
  const policies = {
    consumer: Array.from({ length: 6 }, () => randomPolicy(r, 'consumer')),
    b2b: Array.from({ length: 6 }, () => randomPolicy(r, 'b2b')),
  };
  for (let i = 0; i < random; i++) {
    const kind = i % 5 < 2 ? 'consumer' : 'b2b';
    cases.push(randomCase(r, kind, policies[kind]));
  }
  return cases.map((c, i) => ({ id: i + 1, ...c }));
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { values } = parseArgs({ options: { random: { type: 'string' }, seed: { type: 'string' } } });
  const cases = corpus({ random: Number(values.random ?? 240), seed: Number(values.seed ?? 19) });
  process.stdout.write(cases.map((c) => JSON.stringify(c)).join('\n') + '\n');
}
