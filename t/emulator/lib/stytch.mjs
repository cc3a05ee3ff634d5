// The emulated Stytch API: attest, authenticate, JWKS and the RBAC policy,
// consumer and B2B.
import { compactVerify, decodeProtectedHeader, SignJWT } from 'jose';
import { clock, newId, newSessionToken, rfc3339, StytchError, isPlainObject } from './util.mjs';
import { verifyTrustedAuthToken, JwksCache } from './tat.mjs';

export const MIN_SESSION_MINUTES = 5;
export const MAX_SESSION_MINUTES = 527040;
export const B2B_DEFAULT_SESSION_MINUTES = 60;
export const CUSTOM_CLAIMS_MAX_BYTES = 4096;
const SESSION_CLAIM = 'https://stytch.com/session';
const ORG_CLAIM = 'https://stytch.com/organization';
const RESERVED_CLAIMS = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti']);
const STYTCH_NAMESPACE = 'https://stytch.com/';

const E = (status, type, msg) => new StytchError(status, type, msg);

export class StytchApi {
  // projectKeys: the session-JWT signing keys, the current one first
  // ({ kid, privateKey, publicKey, jwk } each); the JWKS serves them all
  constructor(config, projectKeys) {
    this.config = config;           // parsed config (profiles/organizations maps)
    this.keys = projectKeys;
    this.jwks = new JwksCache();
    this.reset();
  }

  reset() {
    this.users = new Map();         // email -> user
    this.members = new Map();       // org_id \n email -> member
    this.sessions = new Map();      // session id -> session
    this.byToken = new Map();       // session_token -> session id
    this.seen = new Map();          // profile_id \n token_id -> exp (ms)
  }

  // the key that signs new session JWTs
  get key() { return this.keys[0]; }

  counts() {
    this.#purge();
    return {
      users: this.users.size,
      members: this.members.size,
      sessions: this.sessions.size,
      seen_token_ids: this.seen.size,
    };
  }

  revokeAllSessions() {
    const n = this.sessions.size;
    this.sessions.clear();
    this.byToken.clear();
    return n;
  }

  #purge() {
    const now = clock.now();
    for (const [id, s] of this.sessions) {
      if (s.expires_at <= now) { this.sessions.delete(id); this.byToken.delete(s.token); }
    }
    for (const [k, exp] of this.seen) if (exp <= now) this.seen.delete(k);
  }

  // ---- routing ------------------------------------------------------------

  // Returns { status, body } or throws StytchError.
  async handle(method, path, body, ctx) {
    const jwks = path.match(/^\/v1\/(b2b\/)?sessions\/jwks\/([^/]+)$/);
    if (jwks) {
      if (method !== 'GET') throw E(405, 'method_not_allowed', `Method ${method} is not allowed on this route.`);
      return this.getJwks(decodeURIComponent(jwks[2]));
    }
    // RBAC: the project's policy (consumer, B2B) and the B2B SDK's
    // organization policy (a private beta: no roles here)
    const rbac = path.match(/^\/v1\/(?:(b2b)\/)?rbac\/(?:policy|organizations\/([^/]+))$/);
    if (rbac && (rbac[1] || !rbac[2])) {
      if (method !== 'GET') throw E(405, 'method_not_allowed', `Method ${method} is not allowed on this route.`);
      if (ctx.auth !== 'ok') throw E(401, 'unauthorized_credentials', 'Unauthorized credentials.');
      if (rbac[2] !== undefined) return this.getOrgPolicy(decodeURIComponent(rbac[2]));
      return { status: 200, body: { request_id: newId('request-id'), status_code: 200, policy: this.policy(!!rbac[1]) } };
    }
    const routes = {
      '/v1/sessions/attest': () => this.attest(body, false, ctx),
      '/v1/b2b/sessions/attest': () => this.attest(body, true, ctx),
      '/v1/sessions/authenticate': () => this.authenticate(body, false),
      '/v1/b2b/sessions/authenticate': () => this.authenticate(body, true),
    };
    const route = routes[path];
    if (!route) throw E(404, 'route_not_found', `No route for ${method} ${path} in this emulator.`);
    if (method !== 'POST') throw E(405, 'method_not_allowed', `Method ${method} is not allowed on this route.`);
    if (ctx.auth !== 'ok') throw E(401, 'unauthorized_credentials', 'Unauthorized credentials.');
    if (ctx.bodyError) throw E(400, 'invalid_request_body', ctx.bodyError);
    if (!isPlainObject(body)) throw E(400, 'invalid_request_body', 'The request body must be a JSON object.');
    return route();
  }

  getJwks(projectId) {
    if (projectId !== this.config.project_id) throw E(404, 'project_not_found', 'Project could not be found.');
    return { status: 200, body: { keys: this.keys.map((k) => k.jwk), request_id: newId('request-id'), status_code: 200 } };
  }

  // The RBAC policy in force: the configured one, or Stytch's default roles
  // (consumer stytch_user; B2B stytch_member, stytch_admin) and rbac_roles,
  // none with permissions.
  policy(b2b) {
    const configured = this.config[b2b ? 'b2b_rbac_policy' : 'rbac_policy'];
    if (configured) return configured;
    const defaults = b2b ? ['stytch_member', 'stytch_admin'] : ['stytch_user'];
    const ids = [...defaults, ...(this.config.rbac_roles ?? []).filter((r) => !defaults.includes(r))];
    return {
      resources: [],
      roles: ids.map((role_id) => ({ role_id, description: '', permissions: [] })),
      scopes: [],
    };
  }

  // The B2B SDK's authenticateJwtLocal() asks for it on every
  // authorization check; organization-level roles are not emulated.
  getOrgPolicy(orgId) {
    if (!this.config.organizations.has(orgId)) throw E(404, 'organization_not_found', 'Organization could not be found.');
    return { status: 200, body: { request_id: newId('request-id'), status_code: 200, org_policy: { roles: [] } } };
  }

  // ---- request validation -------------------------------------------------

  #optString(body, name) {
    const v = body[name];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw E(400, 'invalid_request_body', `${name} must be a string.`);
    return v;
  }

  #duration(body) {
    const d = body.session_duration_minutes;
    if (d === undefined || d === null) return undefined;
    if (typeof d !== 'number' || !Number.isInteger(d) || d < MIN_SESSION_MINUTES || d > MAX_SESSION_MINUTES) {
      throw E(400, 'invalid_session_duration', `session_duration_minutes must be an integer between ${MIN_SESSION_MINUTES} and ${MAX_SESSION_MINUTES}.`);
    }
    return d;
  }

  // Custom claims, null values kept (delete markers).  Stytch's custom
  // claims guide: reserved names and its own namespace are errors, and the
  // whole may take at most 4 KB; its attest reference says reserved names
  // are ignored: config.custom_claims_reserved picks ("error" by default).
  #customClaims(body) {
    const c = body.session_custom_claims;
    if (c === undefined || c === null) return undefined;
    if (!isPlainObject(c)) throw E(400, 'invalid_request_body', 'session_custom_claims must be a JSON object.');
    if (Buffer.byteLength(JSON.stringify(c)) > CUSTOM_CLAIMS_MAX_BYTES) {
      throw E(400, 'custom_claims_too_large', `session_custom_claims must not exceed ${CUSTOM_CLAIMS_MAX_BYTES} bytes.`);
    }
    const out = {};
    for (const [k, v] of Object.entries(c)) {
      const reserved = RESERVED_CLAIMS.has(k);
      const stytch = k.toLowerCase().startsWith(STYTCH_NAMESPACE);
      if ((reserved || stytch) && this.config.custom_claims_reserved !== 'ignore') {
        throw reserved
          ? E(400, 'reserved_claims_in_custom_claims', `The custom claim ${JSON.stringify(k)} is a reserved claim.`)
          : E(400, 'stytch_claims_in_custom_claims', `The custom claim ${JSON.stringify(k)} is in Stytch's namespace.`);
      }
      if (!reserved && !stytch) out[k] = v;
    }
    return out;
  }

  #sessionArgs(body, required) {
    const token = this.#optString(body, 'session_token');
    const jwt = this.#optString(body, 'session_jwt');
    if (token && jwt) throw E(400, 'too_many_session_arguments', 'Provide either session_token or session_jwt, not both.');
    if (required && !token && !jwt) throw E(400, 'no_session_arguments', 'Provide one of session_token or session_jwt.');
    return { token, jwt };
  }

  // ---- sessions -----------------------------------------------------------

  async #findSession({ token, jwt }, b2b) {
    this.#purge();
    let s;
    if (token) {
      s = this.sessions.get(this.byToken.get(token));
    } else if (jwt) {
      let payload;
      try {
        // the kid picks the key among the JWKS's (a rotation keeps the old one a while)
        const { kid } = decodeProtectedHeader(jwt);
        const key = this.keys.find((k) => k.kid === kid);
        if (!key) throw new Error('unknown kid');
        const r = await compactVerify(jwt, key.publicKey, { algorithms: ['RS256'] });
        payload = JSON.parse(Buffer.from(r.payload).toString('utf8'));
      } catch {
        throw E(400, 'unable_to_parse_session_jwt', 'The session_jwt is malformed or its signature does not verify with the project key.');
      }
      const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
      if (payload.iss !== `stytch.com/${this.config.project_id}`) {
        throw E(400, 'jwt_invalid_issuer', 'The session_jwt was not issued for this project.');
      }
      if (!aud.includes(this.config.project_id)) {
        throw E(400, 'jwt_invalid_audience', 'The session_jwt is not for this project.');
      }
      // An expired JWT is accepted as long as its session is still alive.
      s = this.sessions.get(payload[SESSION_CLAIM]?.id);
    }
    if (!s || s.b2b !== b2b) throw E(404, 'session_not_found', 'Session could not be found.');
    return s;
  }

  #newSession(b2b, subjectId, orgId, minutes, customClaims) {
    const now = clock.now();
    const s = {
      id: newId(b2b ? 'member-session' : 'session'),
      b2b,
      subject_id: subjectId,
      organization_id: orgId,
      token: newSessionToken(),
      started_at: now,
      last_accessed_at: now,
      expires_at: now + minutes * 60000,
      factors: [],
      custom_claims: Object.fromEntries(Object.entries(customClaims ?? {}).filter(([, v]) => v !== null)),
    };
    this.sessions.set(s.id, s);
    this.byToken.set(s.token, s.id);
    return s;
  }

  #factor(tokenId) {
    const t = rfc3339(clock.now());
    return {
      type: 'trusted_auth_token',
      delivery_method: 'trusted_token_exchange',
      last_authenticated_at: t,
      created_at: t,
      updated_at: t,
      trusted_auth_token_factor: { token_id: tokenId },
    };
  }

  #roles(s) {
    if (s.b2b) {
      const m = this.#memberById(s.subject_id);
      return m ? m.roles.map((r) => r.role_id) : ['stytch_member'];
    }
    return this.#userById(s.subject_id)?.roles ?? ['stytch_user'];
  }

  #sessionView(s) {
    const common = {
      started_at: rfc3339(s.started_at),
      last_accessed_at: rfc3339(s.last_accessed_at),
      expires_at: rfc3339(s.expires_at),
      attributes: { ip_address: '', user_agent: '' },
      authentication_factors: s.factors,
      roles: this.#roles(s),
      custom_claims: s.custom_claims,
    };
    if (s.b2b) {
      const org = this.config.organizations.get(s.organization_id);
      return {
        member_session_id: s.id,
        member_id: s.subject_id,
        organization_id: s.organization_id,
        organization_slug: org?.organization_slug ?? '',
        ...common,
      };
    }
    return { session_id: s.id, user_id: s.subject_id, ...common };
  }

  async #sessionJwt(s) {
    const now = clock.nowSeconds();
    const claims = {
      ...s.custom_claims,
      [SESSION_CLAIM]: {
        id: s.id,
        started_at: rfc3339(s.started_at),
        last_accessed_at: rfc3339(s.last_accessed_at),
        expires_at: rfc3339(s.expires_at),
        attributes: { ip_address: '', user_agent: '' },
        authentication_factors: s.factors,
        roles: this.#roles(s),
      },
    };
    if (s.b2b) {
      const org = this.config.organizations.get(s.organization_id);
      claims[ORG_CLAIM] = { organization_id: s.organization_id, slug: org?.organization_slug ?? '' };
    }
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: this.key.kid, typ: 'JWT' })
      .setSubject(s.subject_id)
      .setIssuer(`stytch.com/${this.config.project_id}`)
      .setAudience([this.config.project_id])
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + this.config.session_jwt_lifetime_seconds)
      .sign(this.key.privateKey);
  }

  // ---- users, members, organizations ---------------------------------------

  // Role ids must exist in the project's RBAC policy (config.rbac_roles, or
  // else the role ids of the configured policy, with Stytch's default
  // roles); with neither, every role id is accepted.
  #checkRoles(roles, defaults, b2b) {
    const policy = this.config[b2b ? 'b2b_rbac_policy' : 'rbac_policy'];
    const known = this.config.rbac_roles ?? policy?.roles.map((r) => r.role_id) ?? null;
    if (!roles || !known) return;
    for (const r of roles) {
      if (!known.includes(r) && !defaults.includes(r)) {
        throw E(400, 'invalid_rbac_role_id', `The role id ${JSON.stringify(r)} is not in the project's RBAC policy.`);
      }
    }
  }

  #userById(id) {
    for (const u of this.users.values()) if (u.user_id === id) return u;
    return undefined;
  }

  #memberById(id) {
    for (const m of this.members.values()) if (m.member_id === id) return m;
    return undefined;
  }

  #newUser(email) {
    const now = rfc3339(clock.now());
    return {
      user_id: newId('user'),
      emails: [{ email_id: newId('email'), email, verified: true }],
      status: 'active',
      phone_numbers: [],
      webauthn_registrations: [],
      providers: [],
      totps: [],
      crypto_wallets: [],
      biometric_registrations: [],
      is_locked: false,
      roles: ['stytch_user'],
      name: { first_name: '', middle_name: '', last_name: '' },
      created_at: now,
      password: null,
      trusted_metadata: {},
      untrusted_metadata: {},
      external_id: null,
      lock_created_at: null,
      lock_expires_at: null,
    };
  }

  #newMember(org, email) {
    const now = rfc3339(clock.now());
    return {
      organization_id: org.organization_id,
      member_id: newId('member'),
      email_address: email,
      status: 'active',
      name: '',
      sso_registrations: [],
      is_breakglass: false,
      member_password_id: '',
      oauth_registrations: [],
      email_address_verified: true,
      mfa_phone_number_verified: false,
      is_admin: false,
      totp_registration_id: '',
      retired_email_addresses: [],
      is_locked: false,
      mfa_enrolled: false,
      mfa_phone_number: '',
      default_mfa_method: '',
      roles: [{ role_id: 'stytch_member', sources: [{ type: 'direct_assignment', details: {} }] }],
      trusted_metadata: {},
      untrusted_metadata: {},
      created_at: now,
      updated_at: now,
      external_id: null,
    };
  }

  #orgView(org) {
    return {
      organization_id: org.organization_id,
      organization_name: org.organization_name,
      organization_slug: org.organization_slug,
      organization_logo_url: '',
      trusted_metadata: {},
      sso_jit_provisioning: 'NOT_ALLOWED',
      sso_jit_provisioning_allowed_connections: [],
      sso_active_connections: [],
      email_allowed_domains: [],
      email_jit_provisioning: 'NOT_ALLOWED',
      email_invites: 'ALL_ALLOWED',
      auth_methods: 'ALL_ALLOWED',
      allowed_auth_methods: [],
      mfa_policy: 'OPTIONAL',
      rbac_email_implicit_role_assignments: [],
      mfa_methods: 'ALL_ALLOWED',
      allowed_mfa_methods: [],
      oauth_tenant_jit_provisioning: 'NOT_ALLOWED',
      allowed_oauth_tenants: {},
      claimed_email_domains: [],
      created_at: org.created_at ?? rfc3339(clock.now()),
      updated_at: org.created_at ?? rfc3339(clock.now()),
    };
  }

  // ---- endpoints ----------------------------------------------------------

  async attest(body, b2b, ctx) {
    const profileId = this.#optString(body, 'profile_id');
    if (!profileId) throw E(400, 'missing_profile_id', 'profile_id is required.');
    const token = this.#optString(body, 'token');
    if (!token) throw E(400, 'missing_token', 'token is required.');
    const duration = this.#duration(body);
    const customClaims = this.#customClaims(body);
    const sessionArgs = this.#sessionArgs(body, false);
    const bodyOrgId = b2b ? this.#optString(body, 'organization_id') : undefined;
    this.#optString(body, 'telemetry_id');

    const profile = this.config.profiles.get(profileId);
    if (!profile) throw E(404, 'trusted_token_profile_not_found', 'Trusted auth token profile could not be found.');
    if (profile.b2b !== b2b) {
      throw E(404, 'trusted_token_profile_not_found', `Trusted auth token profile is a ${profile.b2b ? 'B2B' : 'consumer'} profile, not usable on this endpoint.`);
    }

    const v = await verifyTrustedAuthToken(token, profile, this.config, this.jwks, {
      onParsed: (claims) => {
        const id = claims?.[profile.attribute_mapping.token_id];
        if (typeof id === 'string') ctx.tokenId = id;
      },
    });
    this.#purge();
    const seenKey = `${profile.profile_id}\n${v.tokenId}`;
    if (profile.token_id_replay === 'reject' && this.seen.has(seenKey)) {
      throw E(400, 'invalid_trusted_auth_token', 'token_id already used.');
    }

    const existing = sessionArgs.token || sessionArgs.jwt ? await this.#findSession(sessionArgs, b2b) : undefined;
    return b2b ? this.#attestB2B(profile, v, { duration, customClaims, existing, bodyOrgId, seenKey })
      : this.#attestConsumer(profile, v, { duration, customClaims, existing, seenKey });
  }

  #attachOrCreate(existing, b2b, subjectId, orgId, duration, customClaims, tokenId) {
    const factor = this.#factor(tokenId);
    if (existing) {
      existing.factors.push(factor);
      existing.last_accessed_at = clock.now();
      if (duration !== undefined) existing.expires_at = clock.now() + duration * 60000;
      return existing;
    }
    if (duration === undefined) return undefined;
    const s = this.#newSession(b2b, subjectId, orgId, duration, customClaims);
    s.factors.push(factor);
    return s;
  }

  async #attestConsumer(profile, v, { duration, customClaims, existing, seenKey }) {
    let user = this.users.get(v.email);
    if (existing && (!user || existing.subject_id !== user.user_id)) {
      throw E(400, 'user_id_mismatch', 'The session given belongs to another user than the token\'s.');
    }
    this.#checkRoles(v.roles, ['stytch_user'], false);
    if (v.externalUserId !== undefined) {
      for (const u of this.users.values()) {
        if (u !== user && u.external_id === v.externalUserId) {
          throw E(400, 'duplicate_user_external_id', 'Another user has this external_id.');
        }
      }
    }
    if (!user) {
      if (!profile.jit_provisioning) throw E(404, 'user_not_found', 'User could not be found.');
      user = this.#newUser(v.email);
      this.users.set(v.email, user);
    }
    if (v.externalUserId !== undefined) user.external_id = v.externalUserId;
    if (v.roles !== undefined) user.roles = ['stytch_user', ...v.roles.filter((r) => r !== 'stytch_user')];
    this.seen.set(seenKey, v.exp * 1000);

    const s = this.#attachOrCreate(existing, false, user.user_id, undefined, duration, customClaims, v.tokenId);
    const out = {
      status_code: 200,
      request_id: newId('request-id'),
      user_id: user.user_id,
      session_token: s ? s.token : '',
      session_jwt: s ? await this.#sessionJwt(s) : '',
      user,
    };
    if (s) out.session = this.#sessionView(s);
    return { status: 200, body: out };
  }

  async #attestB2B(profile, v, { duration, customClaims, existing, bodyOrgId, seenKey }) {
    // "The token must have an organization ID claim if JIT provisioning is
    // enabled" (the attest reference): the body's organization_id is not enough
    if (profile.jit_provisioning && !v.organizationId) {
      throw E(400, 'token_missing_organization_id_claim',
        `The token has no organization ID claim (${profile.attribute_mapping.organization_id ?? 'organization_id is not mapped'}), which a profile with JIT provisioning requires.`);
    }
    if (v.organizationId && bodyOrgId && v.organizationId !== bodyOrgId) {
      throw E(400, 'organization_id_mismatch', 'organization_id in the request differs from the token\'s organization claim.');
    }
    const orgId = v.organizationId ?? bodyOrgId;
    if (!orgId) throw E(400, 'token_missing_organization_id_claim', 'The token has no organization ID claim and the request no organization_id.');
    const org = this.config.organizations.get(orgId);
    if (!org) throw E(404, 'organization_not_found', 'Organization could not be found.');

    const key = `${org.organization_id}\n${v.email}`;
    let member = this.members.get(key);
    if (existing && (!member || existing.subject_id !== member.member_id)) {
      throw E(400, 'member_session_member_id_mismatch', 'The session given belongs to another member than the token\'s.');
    }
    this.#checkRoles(v.roles, ['stytch_member', 'stytch_admin'], true);
    const ext = v.externalMemberId ?? v.externalUserId;
    if (ext !== undefined) {
      for (const m of this.members.values()) {
        if (m !== member && m.organization_id === org.organization_id && m.external_id === ext) {
          throw E(400, 'duplicate_member_external_id', 'Another member of the organization has this external_id.');
        }
      }
    }
    if (!member) {
      if (!profile.jit_provisioning) throw E(404, 'member_not_found', 'Member could not be found.');
      member = this.#newMember(org, v.email);
      this.members.set(key, member);
    }
    if (ext !== undefined) member.external_id = ext;
    if (v.roles !== undefined) {
      member.roles = [{ role_id: 'stytch_member', sources: [{ type: 'direct_assignment', details: {} }] },
        ...v.roles.filter((r) => r !== 'stytch_member').map((r) => ({ role_id: r, sources: [{ type: 'trusted_auth_token', details: {} }] }))];
    }
    member.updated_at = rfc3339(clock.now());
    this.seen.set(seenKey, v.exp * 1000);

    const s = this.#attachOrCreate(existing, true, member.member_id, org.organization_id,
      existing ? duration : (duration ?? B2B_DEFAULT_SESSION_MINUTES), customClaims, v.tokenId);
    return {
      status: 200,
      body: {
        status_code: 200,
        request_id: newId('request-id'),
        member_id: member.member_id,
        member_session: this.#sessionView(s),
        session_token: s.token,
        session_jwt: await this.#sessionJwt(s),
        member,
        organization: this.#orgView(org),
        member_authenticated: true,
        intermediate_session_token: '',
      },
    };
  }

  async authenticate(body, b2b) {
    const args = this.#sessionArgs(body, true);
    const duration = this.#duration(body);
    const customClaims = this.#customClaims(body);
    const s = await this.#findSession(args, b2b);
    const now = clock.now();
    s.last_accessed_at = now;
    if (duration !== undefined) s.expires_at = now + duration * 60000;
    if (customClaims) {
      const merged = { ...s.custom_claims };
      for (const [k, val] of Object.entries(customClaims)) {
        if (val === null) delete merged[k]; else merged[k] = val;
      }
      if (Buffer.byteLength(JSON.stringify(merged)) > CUSTOM_CLAIMS_MAX_BYTES) {
        throw E(400, 'custom_claims_too_large', `session_custom_claims must not exceed ${CUSTOM_CLAIMS_MAX_BYTES} bytes.`);
      }
      s.custom_claims = merged;
    }
    const common = {
      status_code: 200,
      request_id: newId('request-id'),
      session_token: s.token,
      session_jwt: await this.#sessionJwt(s),
    };
    if (b2b) {
      const member = this.#memberById(s.subject_id);
      const org = this.config.organizations.get(s.organization_id);
      if (!member || !org) throw E(404, 'session_not_found', 'Session could not be found.');
      // no top-level member_id / user_id: the SDK's types have none here
      return {
        status: 200,
        body: { ...common, member_session: this.#sessionView(s), member, organization: this.#orgView(org) },
      };
    }
    const user = this.#userById(s.subject_id);
    if (!user) throw E(404, 'session_not_found', 'Session could not be found.');
    return { status: 200, body: { ...common, session: this.#sessionView(s), user } };
  }
}
