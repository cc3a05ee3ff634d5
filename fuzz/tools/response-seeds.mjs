// Writes realistic seeds for fuzz_response: real answers of the Stytch
// emulator (t/emulator) to attest and authenticate, consumer and B2B, and
// its error answers, each prefixed with the status byte fuzz_response.c
// reads (an index into its statuses[] table).
//
//   node fuzz/tools/response-seeds.mjs fuzz/corpus/fuzz_response
//
// Needs `npm ci` in t/emulator.  The seeds are committed; rerun only to
// refresh them.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmulator, mintTat } from '../../t/emulator/testlib/harness.mjs';

const out = process.argv[2];
if (!out) throw new Error('usage: response-seeds.mjs DIR');

// fuzz_response.c: statuses[] = {200,201,299,400,401,403,404,429,500,502,503,0,199,300,-1}
const STATUS_BYTE = { 200: 0, 201: 1, 400: 3, 401: 4, 403: 5, 404: 6, 429: 7, 500: 8, 502: 9, 503: 10 };

const PROJECT = 'project-test-00000000-0000-0000-0000-000000000000';
const SECRET = 'secret-test-seeds-not-a-real-secret-0000000000';
const PROFILE = 'trusted-auth-token-profile-test-00000000-0000-0000-0000-000000000000';
const B2B_PROFILE = 'trusted-auth-token-profile-test-b2b00000-0000-0000-0000-000000000000';
const ORG = 'organization-test-00000000-0000-0000-0000-000000000000';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = publicKey.export({ type: 'spki', format: 'pem' });
const mapping = { email: 'email', token_id: 'jti', external_user_id: 'sub', role_ids: 'assignments' };

const dir = mkdtempSync(join(tmpdir(), 'fuzz-seeds-'));
const emu = await startEmulator(dir, {
  project_id: PROJECT, secret: SECRET,
  profiles: [
    { profile_id: PROFILE, issuer: 'https://auth.example.com', audience: 'https://api.example.com',
      public_keys: [pem], attribute_mapping: mapping, jit_provisioning: true, algorithms: ['RS256'] },
    { profile_id: B2B_PROFILE, issuer: 'https://auth.example.com', audience: 'https://api.example.com',
      public_keys: [pem], attribute_mapping: { ...mapping, organization_id: 'org' },
      jit_provisioning: true, algorithms: ['RS256'], b2b: true },
  ],
  organizations: [{ organization_id: ORG, organization_slug: 'example', organization_name: 'Example' }],
});

const auth = `${PROJECT}:${SECRET}`;
const post = (path, body, a = auth) => emu.request('POST', path, { body, auth: a });

function save(name, res, status = res.status) {
  const b = STATUS_BYTE[status];
  if (b === undefined) throw new Error(`no status byte for ${status}`);
  writeFileSync(join(out, name), Buffer.concat([Buffer.from([b]), Buffer.from(res.text)]));
  console.log(`${name}: ${status} ${res.text.length} bytes`);
}

try {
  const tok = (extra = {}) => mintTat(privateKey, { email: 'ada.lovelace@example.com', sub: 'user_123456',
    jti: randomUUID(), extra });

  const a = await post('/v1/sessions/attest', { profile_id: PROFILE, token: await tok(), session_duration_minutes: 60 });
  save('consumer-attest-200.json', a);
  const sess = JSON.parse(a.text);

  save('consumer-attest-no-session-200.json',
    await post('/v1/sessions/attest', { profile_id: PROFILE, token: await tok() }));
  save('consumer-attest-existing-session-200.json',
    await post('/v1/sessions/attest', { profile_id: PROFILE, token: await tok(),
      session_token: sess.session_token, session_duration_minutes: 30 }));
  save('consumer-authenticate-200.json',
    await post('/v1/sessions/authenticate', { session_token: sess.session_token }));

  const b = await post('/v1/b2b/sessions/attest', { profile_id: B2B_PROFILE, token: await tok({ org: ORG }),
    session_duration_minutes: 60 });
  save('b2b-attest-200.json', b);
  save('b2b-authenticate-200.json',
    await post('/v1/b2b/sessions/authenticate', { session_token: JSON.parse(b.text).session_token }));

  // the same 200 bodies under an error status: must be refused as such
  save('consumer-attest-as-500.json', a, 500);

  save('error-invalid-token-400.json', await post('/v1/sessions/attest', { profile_id: PROFILE, token: 'x.y.z' }));
  save('error-missing-token-400.json', await post('/v1/sessions/attest', { profile_id: PROFILE }));
  save('error-credentials-401.json', await post('/v1/sessions/attest', { profile_id: PROFILE, token: await tok() },
    `${PROJECT}:wrong`));
  save('error-profile-404.json', await post('/v1/sessions/attest', { profile_id: 'nope', token: await tok() }));
  save('error-session-404.json', await post('/v1/sessions/attest', { profile_id: PROFILE, token: await tok(),
    session_token: 'no-such-session-token-000000000000000000000' }));
  save('error-org-404.json', await post('/v1/b2b/sessions/attest', { profile_id: B2B_PROFILE,
    token: await tok({ org: 'organization-test-unknown' }) }));

  await emu.control('POST', '/faults', { path: '/v1/sessions/attest', mode: 'rate_limit', retry_after: 3, count: 1 });
  save('error-rate-limit-429.json', await post('/v1/sessions/attest', { profile_id: PROFILE, token: await tok() }));
  await emu.control('POST', '/faults', { path: '/v1/sessions/attest', mode: 'status', status: 503, count: 1 });
  save('error-unavailable-503.json', await post('/v1/sessions/attest', { profile_id: PROFILE, token: await tok() }));
  await emu.control('POST', '/faults', { path: '/v1/sessions/attest', mode: 'status', status: 500, count: 1 });
  save('error-internal-500.json', await post('/v1/sessions/attest', { profile_id: PROFILE, token: await tok() }));
  await emu.control('POST', '/faults', { path: '/v1/sessions/attest', mode: 'malformed_json', count: 1 });
  save('malformed-json-200.txt', await post('/v1/sessions/attest', { profile_id: PROFILE, token: await tok() }));
} finally {
  await emu.stop();
  rmSync(dir, { recursive: true, force: true });
}
