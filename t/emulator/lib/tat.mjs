// Trusted Auth Token verification, as a Stytch profile would do it: key
// selection (PEM keys or a JWKS URL), algorithm allow-list, registered
// claims, lifetime bound and the attribute mapping.
import { createPublicKey } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { compactVerify, decodeProtectedHeader, decodeJwt, calculateJwkThumbprint } from 'jose';
import { clock, StytchError, isPlainObject } from './util.mjs';

const JWKS_FETCH_TIMEOUT_MS = 5000;

const bad = (msg) => new StytchError(400, 'invalid_trusted_auth_token', msg);

// GET url on a connection of its own (agent: false), never a kept-alive one:
// a test's nginx on a port an earlier, stopped nginx had would otherwise get
// the dead pooled socket, and the fetch fails for the refetch interval.
function getText(url, timeoutMs) {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.get(url, { agent: false, headers: { accept: 'application/json' }, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

// An address as RFC 5322's dot-atom: IAP's "accounts.google.com:ada@..."
// is not one (":" is no atext).  Stytch's exact rules are not published.
const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
const EMAIL_RE = new RegExp(`^${ATEXT}(?:\\.${ATEXT})*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,63}$`);

export function isEmailAddress(s) {
  return s.length <= 254 && EMAIL_RE.test(s);
}

function keyFitsAlg(key, alg) {
  const t = key.asymmetricKeyType;
  if (alg === 'RS256') return t === 'rsa';
  if (alg === 'ES256') return t === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  if (alg === 'EdDSA') return t === 'ed25519';
  return false;
}

// A refused or reset connection is tried four more times, 100 ms apart: seen on
// loopback while a test's nginx takes a burst of 200 connections at once.
// An answer, even a bad one, is final.
async function getWithRetry(url) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await getText(url, JWKS_FETCH_TIMEOUT_MS);
    } catch (e) {
      if (attempt >= 5 || !['ECONNREFUSED', 'ECONNRESET'].includes(e.code)) throw e;
      process.stderr.write(`stytch-emulator: JWKS ${url}: ${e.message}, trying again\n`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export class JwksCache {
  constructor() {
    this.entries = new Map();   // url -> { keys:[{kid,key}], fetchedAt, lastAttempt, inflight }
    this.fetches = [];          // log of fetches, for the control API
  }

  clear() { this.entries.clear(); this.fetches = []; }

  async fetchNow(url, reason) {
    const entry = this.entries.get(url) ?? { keys: null, fetchedAt: 0, lastAttempt: 0, inflight: null };
    this.entries.set(url, entry);
    if (entry.inflight) return entry.inflight;
    entry.lastAttempt = clock.now();
    const rec = { time: new Date(clock.now()).toISOString(), url, reason, status: null, ok: false, keys: 0, error: null };
    this.fetches.push(rec);
    entry.inflight = (async () => {
      try {
        const res = await getWithRetry(url);
        rec.status = res.status;
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        const doc = JSON.parse(res.text);
        if (!isPlainObject(doc) || !Array.isArray(doc.keys)) throw new Error('not a JWKS document');
        const keys = [];
        for (const jwk of doc.keys) {
          if (!isPlainObject(jwk) || (jwk.use && jwk.use !== 'sig')) continue;
          try {
            keys.push({ kid: typeof jwk.kid === 'string' ? jwk.kid : undefined, alg: jwk.alg, key: createPublicKey({ key: jwk, format: 'jwk' }) });
          } catch { /* skip keys node cannot import */ }
        }
        entry.keys = keys;
        entry.fetchedAt = clock.now();
        rec.ok = true;
        rec.keys = keys.length;
      } catch (e) {
        rec.error = e.message;
        process.stderr.write(`stytch-emulator: JWKS ${url} (${reason}) failed: ${e.message}\n`);
        // keep stale keys, if any
      } finally {
        entry.inflight = null;
      }
      return entry;
    })();
    return entry.inflight;
  }

  // Keys for URL, fetching when absent or older than ttlMs, and once more
  // (at most once per minRefetchMs) when `kid` is given and not among them.
  async keysFor(url, kid, { ttlMs, minRefetchMs }) {
    let entry = this.entries.get(url);
    const now = clock.now();
    const canFetch = () => !entry || entry.inflight || now - entry.lastAttempt >= minRefetchMs;
    if (!entry || !entry.keys || now - entry.fetchedAt >= ttlMs) {
      if (canFetch()) entry = await this.fetchNow(url, !entry || !entry.keys ? 'initial' : 'expired');
    }
    if (kid !== undefined && entry?.keys && !entry.keys.some((k) => k.kid === kid) && canFetch()) {
      entry = await this.fetchNow(url, 'unknown_kid');
    }
    return entry;
  }
}

// Verify `token` against `profile`. Returns the verified claims and the mapped
// attributes. `opts.onParsed(claims)` is called once the payload decodes.
export async function verifyTrustedAuthToken(token, profile, settings, jwks, opts = {}) {
  const m = profile.attribute_mapping;
  let header; let claims;
  try {
    header = decodeProtectedHeader(token);
    claims = decodeJwt(token);
  } catch {
    throw bad('The token is not a well-formed JWT.');
  }
  if (token.split('.').length !== 3) throw bad('The token is not a compact JWS.');
  opts.onParsed?.(claims);

  const alg = header.alg;
  if (typeof alg !== 'string' || !profile.algorithms.includes(alg)) {
    throw bad(`The token's algorithm ${JSON.stringify(alg)} is not allowed by the profile (allowed: ${profile.algorithms.join(', ')}).`);
  }
  const kid = typeof header.kid === 'string' ? header.kid : undefined;

  let candidates;
  if (profile.jwks_url) {
    const entry = await jwks.keysFor(profile.jwks_url, kid, {
      ttlMs: profile.jwks_cache_seconds * 1000, minRefetchMs: profile.jwks_min_refetch_seconds * 1000,
    });
    if (!entry?.keys) throw bad(`Could not fetch the profile's JWKS from ${profile.jwks_url}.`);
    candidates = kid !== undefined ? entry.keys.filter((k) => k.kid === kid) : entry.keys;
    if (kid !== undefined && candidates.length === 0) throw bad(`No key with kid ${JSON.stringify(kid)} in the profile's JWKS.`);
  } else {
    candidates = profile.keys;
    if (kid !== undefined) {
      for (const k of profile.keys) {
        k.thumbprint ??= await calculateJwkThumbprint(k.jwk);
      }
      const byKid = profile.keys.filter((k) => k.thumbprint === kid);
      if (byKid.length) candidates = byKid;
    }
  }
  candidates = candidates.filter((k) => keyFitsAlg(k.key, alg));
  if (candidates.length === 0) throw bad(`No key of the profile fits algorithm ${alg}.`);
  let verified = false;
  for (const c of candidates) {
    try {
      await compactVerify(token, c.key, { algorithms: [alg] });
      verified = true;
      break;
    } catch { /* try the next key */ }
  }
  if (!verified) throw bad('The token signature could not be verified with any of the profile\'s keys.');

  const now = clock.nowSeconds();
  const skew = profile.clock_skew_seconds ?? settings.clock_skew_seconds;
  const maxLifetime = profile.max_token_lifetime_seconds ?? settings.max_token_lifetime_seconds;
  if (claims.iss !== profile.issuer) {
    throw bad(`The token's iss ${JSON.stringify(claims.iss ?? null)} does not match the profile's issuer.`);
  }
  const aud = claims.aud;
  const audOk = typeof aud === 'string' ? aud === profile.audience
    : Array.isArray(aud) && aud.includes(profile.audience);
  if (!audOk) throw bad(`The token's aud ${JSON.stringify(aud ?? null)} does not contain the profile's audience.`);
  for (const c of ['exp', 'iat', 'nbf']) {
    if (claims[c] !== undefined && (typeof claims[c] !== 'number' || !Number.isFinite(claims[c]))) {
      throw bad(`The token's ${c} claim is not a number.`);
    }
  }
  if (claims.exp === undefined) throw bad('The token has no exp claim.');
  if (claims.exp <= now) throw bad('The token has expired (exp is in the past).');
  if (claims.nbf !== undefined && claims.nbf > now + skew) throw bad('The token is not valid yet (nbf is in the future).');
  if (claims.iat !== undefined && claims.iat > now + skew) throw bad('The token was issued in the future (iat).');
  const lifetime = claims.exp - (claims.iat ?? now);
  if (lifetime > maxLifetime) {
    throw bad(`The token's lifetime of ${lifetime}s exceeds the maximum of ${maxLifetime}s.`);
  }

  const email = claims[m.email];
  if (typeof email !== 'string' || email === '') throw bad(`The token has no email claim (${m.email}) as a string.`);
  if (!isEmailAddress(email)) {
    throw new StytchError(400, 'invalid_email', `The token's email claim (${m.email}) is not a valid email address.`);
  }
  const tokenId = claims[m.token_id];
  if (typeof tokenId !== 'string' || tokenId === '') throw bad(`The token has no token id claim (${m.token_id}) as a string.`);

  const optionalString = (attr) => {
    const name = m[attr];
    if (!name || claims[name] === undefined || claims[name] === null) return undefined;
    if (typeof claims[name] !== 'string') throw bad(`The token's ${attr} claim (${name}) is not a string.`);
    return claims[name];
  };
  let roles;
  if (m.role_ids && claims[m.role_ids] !== undefined && claims[m.role_ids] !== null) {
    const r = claims[m.role_ids];
    if (!Array.isArray(r) || !r.every((x) => typeof x === 'string')) {
      throw bad(`The token's role_ids claim (${m.role_ids}) is not an array of strings.`);
    }
    roles = r;
  }
  return {
    header,
    claims,
    email: email.toLowerCase(),
    tokenId,
    exp: claims.exp,
    externalUserId: optionalString('external_user_id'),
    externalMemberId: optionalString('external_member_id'),
    organizationId: optionalString('organization_id'),
    roles,
  };
}
