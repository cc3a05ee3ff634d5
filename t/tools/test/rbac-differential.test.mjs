// The RBAC differential test (rbac-differential.mjs): the module's decision
// equals the official stytch SDK's on the whole corpus, and the comparison
// itself catches what it must.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { corpus } from '../rbac-corpus.mjs';
import { compare, run } from '../rbac-differential.mjs';

describe('rbac corpus', () => {
  it('has at least 200 cases of every kind the issue names, the same on every run', () => {
    const cases = corpus();
    assert.ok(cases.length >= 200, `${cases.length} cases`);
    assert.deepEqual(corpus(), cases, 'a fixed seed');
    assert.equal(new Set(cases.map((c) => c.id)).size, cases.length);
    const has = (f) => cases.some(f);
    const roles = (c) => c.claims['https://stytch.com/session']?.roles;
    assert.ok(has((c) => c.kind === 'consumer') && has((c) => c.kind === 'b2b'));
    assert.ok(has((c) => c.policy.roles.some((r) => r.permissions.some((p) => p.actions.includes('*')))), '"*" actions');
    assert.ok(has((c) => Array.isArray(roles(c)) && roles(c).some((r) => !c.policy.roles.some((p) => p.role_id === r))), 'unknown roles');
    assert.ok(has((c) => Array.isArray(roles(c)) && roles(c).length >= 3), 'several roles');
    assert.ok(has((c) => c.kind === 'b2b' && c.claims['https://stytch.com/organization']?.organization_id === c.check.organization_id), 'tenancy matches');
    assert.ok(has((c) => c.kind === 'b2b' && c.claims['https://stytch.com/organization']?.organization_id
      && c.claims['https://stytch.com/organization'].organization_id !== c.check.organization_id), 'tenancy mismatches');
    assert.ok(has((c) => roles(c) === undefined), 'missing roles');
    assert.ok(has((c) => c.kind === 'b2b' && !c.claims['https://stytch.com/organization']), 'missing organization claim');
    assert.ok(has((c) => !c.claims['https://stytch.com/session']), 'missing session claim');
  });
});

describe('rbac comparison rules', () => {
  const row = (sdk, module, detail) => compare(
    [{ case: { id: 1, kind: 'b2b' }, sdk_verdict: sdk, sdk_detail: detail }],
    [{ id: 1, verdict: module }],
  )[0].problem;

  it('agree on the same verdict', () => {
    for (const v of ['allow', 'tenancy_mismatch', 'permission_denied']) assert.equal(row(v, v), undefined);
  });

  it('fail on another verdict or reason', () => {
    assert.match(row('allow', 'permission_denied'), /the SDK says allow/);
    assert.match(row('permission_denied', 'allow'), /the module allow/);
    assert.match(row('tenancy_mismatch', 'permission_denied'), /tenancy_mismatch/);
    assert.match(row('permission_denied', 'tenancy_mismatch'), /permission_denied/);
    assert.match(row('permission_denied', 'error'), /the module error/);
  });

  it('take an SDK that throws on a missing claim as a deny, and only then', () => {
    assert.equal(row('error', 'tenancy_mismatch', "TypeError: Cannot read properties of undefined (reading 'organization_id')"), undefined);
    assert.equal(row('error', 'permission_denied', 'StytchError 404 organization_not_found'), undefined);
    assert.match(row('error', 'allow', 'TypeError: x'), /allows what the SDK refuses/);
    assert.match(row('error', 'permission_denied', 'ClientError jwt_invalid'), /the oracle failed/);
    assert.match(row('error', 'permission_denied', 'StytchError 500 internal_server_error'), /the oracle failed/);
    assert.match(compare([{ case: { id: 2 }, sdk_verdict: 'allow' }], [])[0].problem, /no verdict/);
  });
});

describe('rbac differential: module against the stytch SDK', () => {
  it('decides every case of the corpus as the SDK does', (t) => {
    const { rows, table, disagreements } = run();
    for (const line of table.split('\n')) t.diagnostic(line);
    for (const d of disagreements) t.diagnostic(`case ${d.case.id} (${d.case.kind}, ${d.case.note}): ${d.problem}`);
    assert.equal(disagreements.length, 0, `${disagreements.length} disagreement(s)`);
    assert.ok(rows.length >= 200);

    // the corpus reaches every verdict, on both sides
    const n = (kind, side, v) => rows.filter((r) => r.case.kind === kind && r[side] === v).length;
    for (const side of ['sdk', 'module']) {
      for (const kind of ['consumer', 'b2b']) {
        assert.ok(n(kind, side, 'allow') >= 20, `${side} ${kind} allow`);
        assert.ok(n(kind, side, 'permission_denied') >= 20, `${side} ${kind} permission_denied`);
      }
      assert.ok(n('b2b', side, 'tenancy_mismatch') >= 20, `${side} b2b tenancy_mismatch`);
      assert.equal(n('consumer', side, 'tenancy_mismatch'), 0);
    }
    assert.ok(n('b2b', 'sdk', 'error') > 0 && n('consumer', 'sdk', 'error') > 0, 'missing claims reach the SDK');
  });
});
