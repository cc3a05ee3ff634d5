// The oracle of the RBAC differential test: for each case of a corpus
// (rbac-corpus.mjs), the verdict of Stytch's official Node SDK, pointed at
// the emulator.
//
//   node rbac-oracle.mjs CASES.jsonl > SDK.jsonl
//
// It starts the emulator (t/emulator/server.mjs) on free ports in a
// temporary directory, with the corpus's organizations; for each policy of
// the corpus it sets the emulator's policy (POST /config rbac_policy or
// b2b_rbac_policy) and makes new SDK clients (a client caches the policy
// for 5 minutes); for each case it signs a session JWT with the emulator's
// project key (DIR/project-key.json: header {alg RS256, kid, typ JWT},
// iss stytch.com/PROJECT, aud [PROJECT], sub, iat = nbf = now, exp now +
// 300, and the case's claims) and calls the *Local* check, which never
// falls back to Stytch (authenticateJwt would retry remotely on a deny):
//
//   consumer  client.sessions.authenticateJwtLocal({session_jwt,
//                 authorization_check: {resource_id, action}})
//   B2B       b2bClient.sessions.authenticateJwtLocal({session_jwt,
//                 authorization_check: {organization_id, resource_id, action}})
//
// The answer, one line per case: {"case", "jwt", "sdk_verdict", "sdk_detail"}
// with sdk_verdict "allow" (it resolved), "tenancy_mismatch" or
// "permission_denied" (its ClientError tenancy_mismatch or
// invalid_permissions), or "error" (anything else it threw; sdk_detail says
// what: a TypeError on a missing claim, a StytchError of the emulator).
//
// The SDK trusts the emulator's CA through NODE_EXTRA_CA_CERTS, read at
// process start: the script makes the CA, then runs itself again with it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { randomUUID } from 'node:crypto';

const CHILD_ENV = 'STYTCH_RBAC_ORACLE_DIR';
const here = fileURLToPath(new URL('.', import.meta.url));
const emulatorLib = (f) => pathToFileURL(join(here, '..', 'emulator', f)).href;

const file = process.argv[2];
if (!file) {
  console.error('usage: rbac-oracle.mjs CASES.jsonl');
  process.exit(2);
}

if (!process.env[CHILD_ENV]) {
  const { ensureCerts } = await import(emulatorLib('lib/certs.mjs'));
  const dir = mkdtempSync(join(tmpdir(), 'stytch-rbac-oracle-'));
  try {
    const { caCert } = ensureCerts(dir);
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), resolve(file)], {
      stdio: 'inherit',
      env: { ...process.env, [CHILD_ENV]: dir, NODE_EXTRA_CA_CERTS: caCert },
    });
    process.exitCode = r.status ?? 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
} else {
  await oracle(process.env[CHILD_ENV]);
}

async function oracle(dir) {
  const { default: stytch } = await import('stytch');
  const { SignJWT, importPKCS8 } = await import('jose');
  const { startEmulator } = await import(emulatorLib('testlib/harness.mjs'));
  const { ORGS } = await import('./rbac-corpus.mjs');

  const PROJECT_ID = 'project-test-00000000-0000-0000-0000-000000000000';
  const SECRET = `secret-test-${randomUUID().replaceAll('-', '')}`;

  const cases = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));

  const emu = await startEmulator(dir, { project_id: PROJECT_ID, secret: SECRET, organizations: ORGS });
  let failed = false;

  try {
    const pk = JSON.parse(readFileSync(join(dir, 'project-key.json'), 'utf8'));
    const key = await importPKCS8(pk.private_pem, 'RS256');

    const sign = (c) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT(c.claims)
        .setProtectedHeader({ alg: 'RS256', kid: pk.kid, typ: 'JWT' })
        .setIssuer(`stytch.com/${PROJECT_ID}`)
        .setAudience([PROJECT_ID])
        .setSubject(c.kind === 'b2b' ? 'member-test-rbac' : 'user-test-rbac')
        .setIssuedAt(now)
        .setNotBefore(now)
        .setExpirationTime(now + 300)
        .sign(key);
    };

    const verdict = async (fn) => {
      try {
        await fn();
        return { sdk_verdict: 'allow' };
      } catch (e) {
        if (e instanceof stytch.ClientError && e.code === 'tenancy_mismatch') {
          return { sdk_verdict: 'tenancy_mismatch' };
        }
        if (e instanceof stytch.ClientError && e.code === 'invalid_permissions') {
          return { sdk_verdict: 'permission_denied' };
        }
        const detail = e instanceof stytch.ClientError ? `ClientError ${e.code}`
          : e instanceof stytch.StytchError ? `StytchError ${e.status_code} ${e.error_type}`
            : `${e?.constructor?.name ?? typeof e}: ${e?.message}`;
        return { sdk_verdict: 'error', sdk_detail: detail };
      }
    };

    // one policy at a time, in the corpus's order of first use
    const groups = new Map();
    for (const c of cases) {
      const k = `${c.kind}\n${JSON.stringify(c.policy)}`;
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(c);
    }

    const results = new Map();
    for (const group of groups.values()) {
      const { kind, policy } = group[0];
      const set = await emu.control('POST', '/config', { [kind === 'b2b' ? 'b2b_rbac_policy' : 'rbac_policy']: policy });
      if (set.status !== 200) throw new Error(`the emulator refused a policy: ${JSON.stringify(set.body)}`);
      const client = kind === 'b2b'
        ? new stytch.B2BClient({ project_id: PROJECT_ID, secret: SECRET, custom_base_url: emu.baseUrl })
        : new stytch.Client({ project_id: PROJECT_ID, secret: SECRET, custom_base_url: emu.baseUrl });
      for (const c of group) {
        const jwt = await sign(c);
        const v = await verdict(() => client.sessions.authenticateJwtLocal({ session_jwt: jwt, authorization_check: c.check }));
        results.set(c.id, { case: c, jwt, ...v });
      }
    }

    for (const c of cases) process.stdout.write(`${JSON.stringify(results.get(c.id))}\n`);
  } catch (e) {
    failed = true;
    console.error(`rbac-oracle: ${e.stack || e}`);
  } finally {
    await emu.stop();
  }

  if (failed) process.exitCode = 1;
}
