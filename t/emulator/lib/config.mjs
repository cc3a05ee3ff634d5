// Loading and validating the emulator's CONFIG.json (and POST /config bodies).
import { createPublicKey } from 'node:crypto';
import { isPlainObject } from './util.mjs';

export const SUPPORTED_ALGS = ['RS256', 'ES256', 'EdDSA'];
export const DEFAULT_MAX_LIFETIME = 3600;
export const DEFAULT_SKEW = 60;
export const DEFAULT_JWKS_CACHE = 300;
export const DEFAULT_JWKS_MIN_REFETCH = 10;
// Stytch's session JWTs live 5 minutes; tests may make them shorter
export const DEFAULT_SESSION_JWT_LIFETIME = 300;
export const TOKEN_ID_REPLAY = ['reject', 'allow'];
// reserved names in session_custom_claims: refused (Stytch's custom claims
// guide) or dropped (its attest reference)
export const CUSTOM_CLAIMS_RESERVED = ['error', 'ignore'];
const DEFAULT_MAPPING = { email: 'email', token_id: 'jti' };

export class ConfigError extends Error {}

function str(v, what, optional = false) {
  if (v === undefined || v === null) {
    if (optional) return undefined;
    throw new ConfigError(`${what} is required`);
  }
  if (typeof v !== 'string' || v === '') throw new ConfigError(`${what} must be a non-empty string`);
  return v;
}

function keyAlgOk(key, alg) {
  const t = key.asymmetricKeyType;
  if (alg === 'RS256') return t === 'rsa';
  if (alg === 'ES256') return t === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  if (alg === 'EdDSA') return t === 'ed25519';
  return false;
}

export function parseProfile(p, i) {
  const where = `profiles[${i}]`;
  if (!isPlainObject(p)) throw new ConfigError(`${where} must be an object`);
  const profile = {
    profile_id: str(p.profile_id, `${where}.profile_id`),
    issuer: str(p.issuer, `${where}.issuer`),
    audience: str(p.audience, `${where}.audience`),
    jwks_url: str(p.jwks_url, `${where}.jwks_url`, true),
    jit_provisioning: p.jit_provisioning === true,
    b2b: p.b2b === true,
    attribute_mapping: { ...DEFAULT_MAPPING },
    algorithms: ['RS256'],
    keys: [],
    // what Stytch's public material does not settle, per profile; the
    // lifetime and skew fall back to the top-level settings
    max_token_lifetime_seconds: num(p.max_token_lifetime_seconds, `${where}.max_token_lifetime_seconds`, undefined),
    clock_skew_seconds: num(p.clock_skew_seconds, `${where}.clock_skew_seconds`, undefined),
    jwks_cache_seconds: num(p.jwks_cache_seconds, `${where}.jwks_cache_seconds`, DEFAULT_JWKS_CACHE),
    jwks_min_refetch_seconds: num(p.jwks_min_refetch_seconds, `${where}.jwks_min_refetch_seconds`, DEFAULT_JWKS_MIN_REFETCH),
    token_id_replay: p.token_id_replay ?? 'reject',
  };
  if (!TOKEN_ID_REPLAY.includes(profile.token_id_replay)) {
    throw new ConfigError(`${where}.token_id_replay must be one of ${TOKEN_ID_REPLAY.join(', ')}`);
  }
  if (p.attribute_mapping !== undefined) {
    if (!isPlainObject(p.attribute_mapping)) throw new ConfigError(`${where}.attribute_mapping must be an object`);
    for (const [k, v] of Object.entries(p.attribute_mapping)) {
      profile.attribute_mapping[k] = str(v, `${where}.attribute_mapping.${k}`);
    }
  }
  if (p.algorithms !== undefined) {
    if (!Array.isArray(p.algorithms) || p.algorithms.length === 0) {
      throw new ConfigError(`${where}.algorithms must be a non-empty array`);
    }
    for (const a of p.algorithms) {
      if (!SUPPORTED_ALGS.includes(a)) throw new ConfigError(`${where}.algorithms: unsupported algorithm ${JSON.stringify(a)} (supported: ${SUPPORTED_ALGS.join(', ')})`);
    }
    profile.algorithms = [...p.algorithms];
  }
  const pems = p.public_keys;
  if (profile.jwks_url && pems !== undefined && pems !== null && pems.length) {
    throw new ConfigError(`${where}: give either jwks_url or public_keys, not both`);
  }
  if (profile.jwks_url) {
    let u;
    try { u = new URL(profile.jwks_url); } catch { throw new ConfigError(`${where}.jwks_url is not a URL`); }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`${where}.jwks_url must be http or https`);
  } else {
    if (!Array.isArray(pems) || pems.length < 1 || pems.length > 5) {
      throw new ConfigError(`${where}: needs jwks_url or 1 to 5 public_keys`);
    }
    pems.forEach((pem, j) => {
      let key;
      try { key = createPublicKey(str(pem, `${where}.public_keys[${j}]`)); } catch (e) {
        if (e instanceof ConfigError) throw e;
        throw new ConfigError(`${where}.public_keys[${j}] is not a PEM public key: ${e.message}`);
      }
      if (!profile.algorithms.some((a) => keyAlgOk(key, a))) {
        throw new ConfigError(`${where}.public_keys[${j}] (${key.asymmetricKeyType}) fits none of the profile's algorithms ${profile.algorithms.join(',')}`);
      }
      const jwk = key.export({ format: 'jwk' });
      profile.keys.push({ key, jwk, index: j });
    });
  }
  return profile;
}

export function parseOrganization(o, i) {
  const where = `organizations[${i}]`;
  if (!isPlainObject(o)) throw new ConfigError(`${where} must be an object`);
  const id = str(o.organization_id, `${where}.organization_id`);
  return {
    organization_id: id,
    organization_slug: str(o.organization_slug, `${where}.organization_slug`, true) ?? id,
    organization_name: str(o.organization_name, `${where}.organization_name`, true) ?? id,
  };
}

// An RBAC policy as Stytch's GET /v1/rbac/policy (and B2B) answers carry
// it: {roles: [{role_id, description, permissions: [{resource_id,
// actions}]}], resources: [{resource_id, description, actions}], scopes}.
// Checked for the shapes the SDKs read; duplicate role ids are allowed (the
// SDKs' checks take every role of an id), so are ids the module refuses,
// for tests of that refusal.
export function parsePolicy(p, what) {
  if (!isPlainObject(p)) throw new ConfigError(`${what} must be an object`);
  if (!Array.isArray(p.roles)) throw new ConfigError(`${what}.roles must be an array`);
  if (p.resources !== undefined && !Array.isArray(p.resources)) throw new ConfigError(`${what}.resources must be an array`);
  if (p.scopes !== undefined && !Array.isArray(p.scopes)) throw new ConfigError(`${what}.scopes must be an array`);
  const strings = (v, w) => {
    if (!Array.isArray(v) || !v.every((a) => typeof a === 'string')) throw new ConfigError(`${w} must be an array of strings`);
    return [...v];
  };
  const permissions = (v, w) => {
    if (!Array.isArray(v)) throw new ConfigError(`${w} must be an array`);
    return v.map((x, k) => {
      if (!isPlainObject(x) || typeof x.resource_id !== 'string') {
        throw new ConfigError(`${w}[${k}] must be {resource_id, actions}`);
      }
      return { resource_id: x.resource_id, actions: strings(x.actions, `${w}[${k}].actions`) };
    });
  };
  const roles = p.roles.map((r, i) => {
    if (!isPlainObject(r) || typeof r.role_id !== 'string') throw new ConfigError(`${what}.roles[${i}] must be an object with a role_id`);
    return {
      role_id: r.role_id,
      description: typeof r.description === 'string' ? r.description : '',
      permissions: permissions(r.permissions ?? [], `${what}.roles[${i}].permissions`),
    };
  });
  const resources = (p.resources ?? []).map((r, i) => {
    if (!isPlainObject(r) || typeof r.resource_id !== 'string') throw new ConfigError(`${what}.resources[${i}] must be an object with a resource_id`);
    return {
      resource_id: r.resource_id,
      description: typeof r.description === 'string' ? r.description : '',
      actions: strings(r.actions ?? [], `${what}.resources[${i}].actions`),
    };
  });
  const scopes = (p.scopes ?? []).map((sc, i) => {
    if (!isPlainObject(sc) || typeof sc.scope !== 'string') throw new ConfigError(`${what}.scopes[${i}] must be an object with a scope`);
    return {
      scope: sc.scope,
      description: typeof sc.description === 'string' ? sc.description : '',
      permissions: permissions(sc.permissions ?? [], `${what}.scopes[${i}].permissions`),
    };
  });
  return { resources, roles, scopes };
}

function num(v, what, dflt) {
  if (v === undefined || v === null) return dflt;
  if (!Number.isFinite(v) || v < 0) throw new ConfigError(`${what} must be a non-negative number`);
  return v;
}

// Parse the parts that POST /config may replace; returns only the keys given.
export function parseRuntimeConfig(c) {
  if (!isPlainObject(c)) throw new ConfigError('config must be a JSON object');
  const out = {};
  if (c.profiles !== undefined) {
    if (!Array.isArray(c.profiles)) throw new ConfigError('profiles must be an array');
    const profiles = new Map();
    c.profiles.forEach((p, i) => {
      const prof = parseProfile(p, i);
      if (profiles.has(prof.profile_id)) throw new ConfigError(`duplicate profile_id ${prof.profile_id}`);
      profiles.set(prof.profile_id, prof);
    });
    out.profiles = profiles;
  }
  if (c.organizations !== undefined) {
    if (!Array.isArray(c.organizations)) throw new ConfigError('organizations must be an array');
    const orgs = new Map();
    c.organizations.forEach((o, i) => {
      const org = parseOrganization(o, i);
      orgs.set(org.organization_id, org);
    });
    out.organizations = orgs;
  }
  if (c.max_token_lifetime_seconds !== undefined) out.max_token_lifetime_seconds = num(c.max_token_lifetime_seconds, 'max_token_lifetime_seconds');
  if (c.clock_skew_seconds !== undefined) out.clock_skew_seconds = num(c.clock_skew_seconds, 'clock_skew_seconds');
  if (c.session_jwt_lifetime_seconds !== undefined) {
    const v = c.session_jwt_lifetime_seconds;
    if (!Number.isInteger(v) || v < 1 || v > 86400) {
      throw new ConfigError('session_jwt_lifetime_seconds must be an integer from 1 to 86400');
    }
    out.session_jwt_lifetime_seconds = v;
  }
  if (c.rbac_roles !== undefined) {
    if (c.rbac_roles !== null && (!Array.isArray(c.rbac_roles) || !c.rbac_roles.every((r) => typeof r === 'string' && r !== ''))) {
      throw new ConfigError('rbac_roles must be an array of role ids, or null');
    }
    out.rbac_roles = c.rbac_roles;
  }
  // null: back to the default policy (see StytchApi.policy())
  for (const k of ['rbac_policy', 'b2b_rbac_policy']) {
    if (c[k] !== undefined) out[k] = c[k] === null ? null : parsePolicy(c[k], k);
  }
  if (c.custom_claims_reserved !== undefined) {
    if (!CUSTOM_CLAIMS_RESERVED.includes(c.custom_claims_reserved)) {
      throw new ConfigError(`custom_claims_reserved must be one of ${CUSTOM_CLAIMS_RESERVED.join(', ')}`);
    }
    out.custom_claims_reserved = c.custom_claims_reserved;
  }
  return out;
}

export function parseConfig(c) {
  if (!isPlainObject(c)) throw new ConfigError('config must be a JSON object');
  const rt = parseRuntimeConfig(c);
  return {
    project_id: str(c.project_id, 'project_id'),
    secret: str(c.secret, 'secret'),
    max_token_lifetime_seconds: rt.max_token_lifetime_seconds ?? DEFAULT_MAX_LIFETIME,
    clock_skew_seconds: rt.clock_skew_seconds ?? DEFAULT_SKEW,
    custom_claims_reserved: rt.custom_claims_reserved ?? 'error',
    session_jwt_lifetime_seconds: rt.session_jwt_lifetime_seconds ?? DEFAULT_SESSION_JWT_LIFETIME,
    rbac_roles: rt.rbac_roles ?? null,
    rbac_policy: rt.rbac_policy ?? null,
    b2b_rbac_policy: rt.b2b_rbac_policy ?? null,
    profiles: rt.profiles ?? new Map(),
    organizations: rt.organizations ?? new Map(),
  };
}
