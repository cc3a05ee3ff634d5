// The token forge (forge-jwt.mjs) checked against jose's own verifier and
// against the emulator that owns the key: each kind is what it says, so a
// test of the module that gets the expected refusal proves something.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createLocalJWKSet, jwtVerify, decodeProtectedHeader, decodeJwt, generateKeyPair, exportSPKI, errors,
} from 'jose';
import { startEmulator } from '../../emulator/testlib/harness.mjs';

const FORGE = join(dirname(fileURLToPath(import.meta.url)), '..', 'forge-jwt.mjs');
const PROJECT_ID = 'project-test-00000000-0000-0000-0000-000000000000';
const ISS = `stytch.com/${PROJECT_ID}`;

const forge = (...args) => execFileSync(process.execPath, [FORGE, ...args], { encoding: 'utf8' }).trim();

describe('forge-jwt.mjs', () => {
  let dir; let emu; let jwks; let set; let all;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stytch-forge-test-'));
    const { publicKey } = await generateKeyPair('RS256', { extractable: true });
    emu = await startEmulator(dir, {
      project_id: PROJECT_ID,
      secret: 'secret-test-forge',
      profiles: [{ profile_id: 'trusted-auth-token-profile-test-forge', issuer: 'https://i', audience: 'https://a', public_keys: [await exportSPKI(publicKey)] }],
    });
    jwks = JSON.parse((await emu.request('GET', `/v1/sessions/jwks/${PROJECT_ID}`)).text);
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwks));
    set = createLocalJWKSet({ keys: jwks.keys });
    all = JSON.parse(forge('--key', join(dir, 'project-key.json'), '--project', PROJECT_ID, '--all',
      '--sub', 'user-test-forge', '--session-id', 'session-test-forge', '--claims', '{"stytch_tat_identity":"bound"}'));
  });

  after(async () => {
    if (emu) await emu.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const verify = (token, opts = {}) => jwtVerify(token, set, { issuer: ISS, audience: PROJECT_ID, algorithms: ['RS256'], ...opts });

  it('valid verifies with jose against the emulator\'s JWKS, with Stytch\'s claims', async () => {
    const { payload, protectedHeader } = await verify(all.valid);
    assert.equal(protectedHeader.kid, jwks.keys[0].kid);
    assert.equal(payload.sub, 'user-test-forge');
    assert.equal(payload['https://stytch.com/session'].id, 'session-test-forge');
    assert.equal(payload.stytch_tat_identity, 'bound');
    assert.equal(payload.exp - payload.iat, 300);
    assert.deepEqual(all.claims, payload);
  });

  it('each bad kind fails for its own reason', async () => {
    const fails = async (kind, cls, opts) => {
      await assert.rejects(verify(all[kind], opts), (e) => {
        assert.ok(e instanceof cls, `${kind}: ${e.constructor.name} ${e.code}: ${e.message}`);
        return true;
      });
    };
    await fails('bad_signature', errors.JWSSignatureVerificationFailed);
    assert.equal(decodeProtectedHeader(all.bad_signature).kid, jwks.keys[0].kid, 'bad_signature carries the real kid');
    await fails('unknown_kid', errors.JWKSNoMatchingKey);
    await fails('alg_none', errors.JOSEAlgNotAllowed);
    assert.equal(decodeProtectedHeader(all.alg_none).alg, 'none');
    assert.equal(all.alg_none.split('.')[2], '', 'alg none: an empty signature');
    await fails('hs256_pubkey', errors.JOSEAlgNotAllowed);
    assert.equal(decodeProtectedHeader(all.hs256_pubkey).alg, 'HS256');
    await fails('wrong_iss', errors.JWTClaimValidationFailed);
    await verify(all.wrong_iss, { issuer: undefined });
    await fails('wrong_aud', errors.JWTClaimValidationFailed);
    await verify(all.wrong_aud, { audience: undefined });
    await fails('expired', errors.JWTExpired);
    await fails('expired', errors.JWTExpired, { clockTolerance: 300 });
    await fails('not_yet_valid', errors.JWTClaimValidationFailed, { clockTolerance: 300 });
    await fails('malformed_base64', errors.JWSInvalid);
    await fails('malformed_header', errors.JWSInvalid);
    await fails('malformed_json', errors.JWTInvalid);
    // what Stytch's SDK refuses with its options (typ "JWT"), jose alone not
    await verify(all.no_typ);
    await fails('no_typ', errors.JWTClaimValidationFailed, { typ: 'JWT' });
    assert.equal(decodeProtectedHeader(all.no_typ).typ, undefined);
    await verify(all.typ_other);
    await fails('typ_other', errors.JWTClaimValidationFailed, { typ: 'JWT' });
    await verify(all.valid, { typ: 'JWT' });
    await fails('iat_string', errors.JWTClaimValidationFailed);
    assert.equal(typeof decodeJwt(all.iat_string).iat, 'string');
    await verify(all.oversized);
    assert.ok(all.oversized.length > 8192 && all.oversized.length < 10000, `oversized: ${all.oversized.length} bytes`);
    assert.ok(all.oversized_unsigned.length > 8192);
  });

  it('other_user is validly signed for another user with another binding', async () => {
    const { payload } = await verify(all.other_user);
    assert.notEqual(payload.sub, 'user-test-forge');
    assert.match(payload.stytch_tat_identity, /^[A-Za-z0-9_-]{43}$/);
    const chosen = forge('--key', join(dir, 'project-key.json'), '--project', PROJECT_ID, '--kind', 'other_user',
      '--other-sub', 'user-test-bob', '--binding', 'bobs-binding');
    const p = (await verify(chosen)).payload;
    assert.deepEqual([p.sub, p.stytch_tat_identity], ['user-test-bob', 'bobs-binding']);
  });

  it('the emulator, which owns the key, agrees: its authenticate parses only the validly signed ones', async () => {
    const auth = `${PROJECT_ID}:secret-test-forge`;
    const authenticate = async (jwt) => JSON.parse((await emu.request('POST', '/v1/sessions/authenticate', { auth, body: { session_jwt: jwt } })).text);
    // signed by the project key for a session it never made: session_not_found
    for (const kind of ['valid', 'expired', 'other_user', 'oversized']) {
      assert.equal((await authenticate(all[kind])).error_type, 'session_not_found', kind);
    }
    for (const kind of ['bad_signature', 'unknown_kid', 'alg_none', 'hs256_pubkey', 'malformed_base64', 'malformed_json']) {
      assert.equal((await authenticate(all[kind])).error_type, 'unable_to_parse_session_jwt', kind);
    }
    assert.equal((await authenticate(all.wrong_iss)).error_type, 'jwt_invalid_issuer');
    assert.equal((await authenticate(all.wrong_aud)).error_type, 'jwt_invalid_audience');
  });

  it('with only the JWKS, the kinds that need no private key; --now and --lifetime set the times', async () => {
    const pub = JSON.parse(forge('--jwks', join(dir, 'jwks.json'), '--project', PROJECT_ID, '--all'));
    assert.deepEqual(Object.keys(pub).sort(), ['alg_none', 'bad_signature', 'hs256_pubkey', 'malformed_base64',
      'malformed_header', 'oversized_unsigned', 'unknown_kid']);
    assert.throws(() => execFileSync(process.execPath, [FORGE, '--jwks', join(dir, 'jwks.json'), '--project', PROJECT_ID,
      '--kind', 'valid'], { stdio: 'pipe' }), (e) => e.status === 2 && /needs --key/.test(e.stderr));
    const t = forge('--key', join(dir, 'project-key.json'), '--project', PROJECT_ID, '--kind', 'valid', '--now', '2000000000', '--lifetime', '3');
    const c = decodeJwt(t);
    assert.deepEqual([c.iat, c.nbf, c.exp], [2000000000, 2000000000, 2000000003]);
    const many = forge('--jwks', join(dir, 'jwks.json'), '--project', PROJECT_ID, '--kind', 'unknown_kid', '--count', '5').split('\n');
    assert.equal(many.length, 5);
    assert.equal(new Set(many.map((m) => decodeProtectedHeader(m).kid)).size, 5, '--count: each its own kid');
  });

  it('after a rotation at the emulator, --key signs with the new kid', async () => {
    const rot = (await emu.control('POST', '/project_keys/rotate', {})).body;
    const t = forge('--key', join(dir, 'project-key.json'), '--project', PROJECT_ID, '--kind', 'valid');
    assert.equal(decodeProtectedHeader(t).kid, rot.current);
    const doc = JSON.parse((await emu.request('GET', `/v1/sessions/jwks/${PROJECT_ID}`)).text);
    await jwtVerify(t, createLocalJWKSet(doc), { issuer: ISS, audience: PROJECT_ID });
    await emu.control('POST', '/project_keys/retire', {});
  });
});
