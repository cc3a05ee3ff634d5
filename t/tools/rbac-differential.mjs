// The RBAC differential test: the module's decision (src/..._rbac.c, run by
// rbac-cases.c) against Stytch's official Node SDK (rbac-oracle.mjs) on the
// corpus of rbac-corpus.mjs, and the verdict table.
//
//   node t/tools/rbac-differential.mjs [--random N] [--keep DIR]
//
// Exits 1 on any disagreement.  The rules:
//   - the SDK allows exactly when the module allows;
//   - when the SDK denies with a reason (tenancy_mismatch,
//     invalid_permissions), the module denies with the same one;
//   - when the SDK throws instead of deciding (a TypeError on a claim the
//     session JWT lacks, the emulator's 404 for the organization policy of
//     an organization id the JWT lacks), that is a deny: the module must
//     deny too, for any reason.  Any other SDK failure (a JWT it refuses, a
//     transport error) is the oracle's own failure and fails the test.
//
// Needs `npm ci` in t/emulator and t/tools, a C compiler ($CC, else cc),
// libjansson-dev and libssl-dev.  --keep DIR keeps cases.jsonl, sdk.jsonl
// and module.jsonl there.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { corpus } from './rbac-corpus.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = resolve(here, '..', '..');

const VERDICTS = ['allow', 'tenancy_mismatch', 'permission_denied', 'error'];
// what the SDK may throw instead of deciding, for a claim the JWT lacks
const SDK_DENIES = [/^TypeError: /, /^StytchError 404 organization_not_found$/];

const jsonl = (text) => text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));

export function buildRunner(dir) {
  const bin = join(dir, 'rbac-cases');
  execFileSync(process.env.CC || 'cc', [
    // the module's sources take nginx's -Wno-unused-parameter (see t/unit/Makefile)
    '-Wall', '-Wextra', '-Wno-unused-parameter', '-Werror', '-O1', '-g', `-I${join(root, 'src')}`,
    join(here, 'rbac-cases.c'), join(root, 'src', 'ngx_http_stytch_tat_rbac.c'),
    join(root, 'src', 'ngx_http_stytch_tat_response.c'), join(root, 'src', 'ngx_http_stytch_tat_jose.c'),
    '-ljansson', '-lcrypto', '-o', bin,
  ], { stdio: ['ignore', 'inherit', 'inherit'] });
  return bin;
}

// one row per case: the case, both verdicts, whether they agree and why not
export function compare(sdkLines, moduleLines) {
  const mod = new Map(moduleLines.map((m) => [m.id, m]));
  return sdkLines.map((s) => {
    const m = mod.get(s.case.id);
    const row = { case: s.case, sdk: s.sdk_verdict, detail: s.sdk_detail, module: m?.verdict, reason: m?.reason, granted: m?.granted };
    if (!m) row.problem = 'the module printed no verdict';
    else if (s.sdk_verdict === 'error') {
      if (!SDK_DENIES.some((re) => re.test(s.sdk_detail ?? ''))) row.problem = `the oracle failed: ${s.sdk_detail}`;
      else if (m.verdict === 'allow') row.problem = 'the module allows what the SDK refuses';
    } else if (s.sdk_verdict !== m.verdict) {
      row.problem = `the SDK says ${s.sdk_verdict}, the module ${m.verdict}${m.reason ? ` (${m.reason})` : ''}`;
    }
    return row;
  });
}

export function table(rows) {
  const kinds = ['consumer', 'b2b'];
  const count = (kind, side, v) => rows.filter((r) => (!kind || r.case.kind === kind) && r[side] === v).length;
  const label = {
    allow: 'allow', tenancy_mismatch: 'tenancy_mismatch', permission_denied: 'permission_denied',
    error: 'deny, no decision',
  };
  const pad = (s, n) => String(s).padStart(n);
  const lines = [];
  lines.push(`${''.padEnd(20)}${kinds.concat('all').map((k) => pad(k, 16)).join('')}`);
  lines.push(`${'verdict'.padEnd(20)}${kinds.concat('all').map(() => `${pad('module', 8)}${pad('sdk', 8)}`).join('')}`);
  for (const v of VERDICTS) {
    lines.push(`${label[v].padEnd(20)}${[...kinds, undefined].map((k) => `${pad(count(k, 'module', v), 8)}${pad(count(k, 'sdk', v), 8)}`).join('')}`);
  }
  lines.push(`${'cases'.padEnd(20)}${[...kinds, undefined].map((k) => pad(rows.filter((r) => !k || r.case.kind === k).length, 16)).join('')}`);

  // where one side did not decide, what the other said
  const why = new Map();
  for (const r of rows) {
    let k;
    if (r.sdk === 'error') k = `the SDK threw ${r.detail} -> module ${r.module}`;
    else if (r.module === 'error') k = `the module refused the claims (${r.reason}) -> SDK ${r.sdk}`;
    if (k) why.set(k, (why.get(k) ?? 0) + 1);
  }
  if (why.size) {
    lines.push('');
    for (const [k, n] of [...why].sort()) lines.push(`${pad(n, 4)}  ${k}`);
  }
  return lines.join('\n');
}

export function run({ random, keep } = {}) {
  const dir = keep ? resolve(keep) : mkdtempSync(join(tmpdir(), 'stytch-rbac-diff-'));
  mkdirSync(dir, { recursive: true });
  try {
    const cases = corpus(random === undefined ? {} : { random });
    const casesFile = join(dir, 'cases.jsonl');
    writeFileSync(casesFile, cases.map((c) => JSON.stringify(c)).join('\n') + '\n');

    const oracle = spawnSync(process.execPath, [join(here, 'rbac-oracle.mjs'), casesFile], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20,
    });
    if (oracle.status !== 0) throw new Error(`rbac-oracle.mjs exited ${oracle.status}`);
    writeFileSync(join(dir, 'sdk.jsonl'), oracle.stdout);

    const bin = buildRunner(dir);
    const runner = spawnSync(bin, [], { input: oracle.stdout, encoding: 'utf8', stdio: ['pipe', 'pipe', 'inherit'], maxBuffer: 64 << 20 });
    if (runner.status !== 0) throw new Error(`rbac-cases exited ${runner.status}`);
    writeFileSync(join(dir, 'module.jsonl'), runner.stdout);

    const sdk = jsonl(oracle.stdout);
    if (sdk.length !== cases.length) throw new Error(`the oracle answered ${sdk.length} of ${cases.length} cases`);
    const rows = compare(sdk, jsonl(runner.stdout));
    return { rows, table: table(rows), disagreements: rows.filter((r) => r.problem) };
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { values } = parseArgs({ options: { random: { type: 'string' }, keep: { type: 'string' } } });
  const { rows, table: t, disagreements } = run({
    random: values.random === undefined ? undefined : Number(values.random), keep: values.keep,
  });
  const sdkVersion = JSON.parse(readFileSync(join(here, 'node_modules', 'stytch', 'package.json'), 'utf8')).version;
  console.log(`RBAC differential: ${rows.length} cases, the module's rbac.c against stytch ${sdkVersion} (authenticateJwtLocal)\n`);
  console.log(t);
  for (const d of disagreements) {
    console.log(`\nDISAGREEMENT case ${d.case.id} (${d.case.kind}, ${d.case.note}): ${d.problem}\n  ${JSON.stringify(d.case)}`);
  }
  console.log(`\n${disagreements.length} disagreement(s)`);
  process.exitCode = disagreements.length ? 1 : 0;
}
