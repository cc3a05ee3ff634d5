// The emulator's command-line contract: ready line and file, certificates,
// reuse across restarts, clean SIGTERM, and refusal of bad arguments/config.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, exportSPKI } from 'jose';
import { startEmulator, httpsRequest, SERVER } from '../testlib/harness.mjs';

const PROJECT_ID = 'project-test-00000000-0000-0000-0000-000000000000';
const dirs = [];
const tmp = () => { const d = mkdtempSync(join(tmpdir(), 'stytch-emulator-cli-')); dirs.push(d); return d; };
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

async function baseConfig() {
  const { publicKey } = await generateKeyPair('RS256', { extractable: true });
  return {
    project_id: PROJECT_ID,
    secret: 'secret-test-cli',
    profiles: [{ profile_id: 'trusted-auth-token-profile-test-cli', issuer: 'https://i', audience: 'https://a', public_keys: [await exportSPKI(publicKey)] }],
    organizations: [],
  };
}

// whether this machine has IPv6 on loopback (a CI container may not)
async function hasIpv6Loopback() {
  const s = net.createServer();
  try {
    await new Promise((res, rej) => { s.once('error', rej); s.listen(0, '::1', res); });
    return true;
  } catch (e) {
    if (e.code === 'EADDRNOTAVAIL' || e.code === 'EAFNOSUPPORT') return false;
    throw e;
  } finally {
    s.close();
  }
}

function runSync(args, dir) {
  return spawnSync(process.execPath, [SERVER, ...args], { cwd: dir, encoding: 'utf8', timeout: 20000 });
}

describe('command line', () => {
  it('starts, prints one ready line, writes DIR/ready, serves TLS for all SANs and stops on SIGTERM', async () => {
    const dir = tmp();
    const emu = await startEmulator(dir, await baseConfig());
    try {
      assert.equal(emu.stdout, 'emulator ready\n');
      assert.match(emu.stderr, /generated CA/);
      assert.ok(emu.ready.listen_port > 0 && emu.ready.control_port > 0);
      const cert = new X509Certificate(readFileSync(join(dir, 'server.pem')));
      const ca = new X509Certificate(readFileSync(join(dir, 'ca.pem')));
      assert.ok(cert.checkIssued(ca));
      for (const san of ['DNS:localhost', 'DNS:stytch.test', 'IP Address:127.0.0.1']) assert.ok(cert.subjectAltName.includes(san), san);
      assert.equal(cert.checkIP('::1'), '::1', 'the certificate names ::1');
      const path = `/v1/sessions/jwks/${PROJECT_ID}`;
      for (const servername of ['localhost', 'stytch.test', null]) {
        const r = await httpsRequest({ ca: emu.ca, port: emu.ready.listen_port, method: 'GET', path, servername });
        assert.equal(r.status, 200, `${servername}: ${r.error}`);
      }
      const untrusted = await httpsRequest({ port: emu.ready.listen_port, method: 'GET', path });
      assert.ok(untrusted.error && untrusted.status === null, 'a client without the CA refuses the certificate');
      const health = await emu.control('GET', '/health');
      assert.deepEqual(health.body, { ok: true });
      const jwks = JSON.parse((await emu.request('GET', path)).text);
      assert.equal(jwks.keys.length, 1);
      const k = jwks.keys[0];
      assert.deepEqual(Object.keys(k).sort(), ['alg', 'e', 'key_ops', 'kid', 'kty', 'n', 'use', 'x5c']);
      assert.deepEqual([k.kty, k.alg, k.use], ['RSA', 'RS256', 'sig']);
      assert.deepEqual(k.key_ops, ['verify']);
      assert.match(k.kid, /^jwk-test-[0-9a-f-]{36}$/);
      const caBefore = readFileSync(join(dir, 'ca.pem'));
      const { code } = await emu.stop();
      assert.equal(code, 0);
      assert.equal(existsSync(join(dir, 'ready')), false, 'ready file removed on exit');

      const emu2 = await startEmulator(dir, await baseConfig());
      try {
        assert.match(emu2.stderr, /reusing CA/);
        assert.ok(readFileSync(join(dir, 'ca.pem')).equals(caBefore), 'CA kept');
        const jwks2 = JSON.parse((await emu2.request('GET', path)).text);
        assert.equal(jwks2.keys[0].kid, k.kid, 'project key kept');
      } finally {
        assert.equal((await emu2.stop()).code, 0);
      }
      writeFileSync(join(dir, 'server.pem'), 'garbage');
      const emu3 = await startEmulator(dir, await baseConfig());
      try {
        assert.match(emu3.stderr, /generated CA/, 'invalid files are regenerated');
      } finally {
        await emu3.stop();
      }
    } finally {
      await emu.stop();
    }
  });

  it('answers on 127.0.0.1 and ::1 alike with --listen localhost (localhost may resolve to either first)', async () => {
    const v6 = await hasIpv6Loopback();
    const dir = tmp();
    const emu = await startEmulator(dir, await baseConfig());
    try {
      assert.deepEqual(emu.ready.listen_addresses, v6 ? ['127.0.0.1', '::1'] : ['127.0.0.1']);
      assert.equal(emu.ready.listen, `127.0.0.1:${emu.ready.listen_port}`);
      if (!v6) assert.match(emu.stderr, /--listen: no ::1 on this machine/);
      const path = `/v1/sessions/jwks/${PROJECT_ID}`;
      // by name; the IP address SANs are checked in the test above: Node's
      // own check of an IPv6 one fails in some releases (18.20 among them)
      for (const host of v6 ? ['127.0.0.1', '::1'] : ['127.0.0.1']) {
        const r = await httpsRequest({ ca: emu.ca, host, port: emu.ready.listen_port, method: 'GET', path, servername: 'localhost' });
        assert.equal(r.status, 200, `${host}: ${r.error}`);
      }
      // a client that connects to the first address localhost resolves to
      // and tries no other (Node 18), for either order of /etc/hosts
      for (const [address, family] of v6 ? [['::1', 6], ['127.0.0.1', 4]] : [['127.0.0.1', 4]]) {
        const lookup = (hostname, opts, cb) => {
          assert.equal(hostname, 'localhost');
          if (opts.all) cb(null, [{ address, family }]); else cb(null, address, family);
        };
        const status = await new Promise((resolve) => {
          https.get(`https://localhost:${emu.ready.listen_port}${path}`, { ca: emu.ca, lookup, agent: false }, (res) => {
            res.resume();
            resolve(res.statusCode);
          }).on('error', (e) => resolve(e.message));
        });
        assert.equal(status, 200, `localhost as ${address}`);
      }
    } finally {
      await emu.stop();
    }
    // the control API stays where it was asked to be
    assert.equal(emu.ready.control, `127.0.0.1:${emu.ready.control_port}`);
  });

  it('exits 1 when the port of --listen localhost is taken on ::1 only', async (t) => {
    if (!(await hasIpv6Loopback())) return t.skip('no ::1 on this machine');
    const dir = tmp();
    const blocker = net.createServer();
    await new Promise((res) => blocker.listen(0, '::1', res));
    const port = blocker.address().port;
    try {
      writeFileSync(join(dir, 'c.json'), JSON.stringify(await baseConfig()));
      const r = runSync(['--listen', `localhost:${port}`, '--control', '127.0.0.1:0', '--dir', dir, '--config', join(dir, 'c.json')], dir);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot listen on --listen localhost:${port}: .*EADDRINUSE.*::1`));
    } finally {
      blocker.close();
    }
  });

  it('refuses missing arguments and invalid configs with exit status 2', async () => {
    const dir = tmp();
    let r = runSync(['--listen', '127.0.0.1:0'], dir);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--control is required/);
    const bad = async (mutate, msg) => {
      const c = await baseConfig();
      mutate(c);
      writeFileSync(join(dir, 'c.json'), JSON.stringify(c));
      r = runSync(['--listen', '127.0.0.1:0', '--control', '127.0.0.1:0', '--dir', dir, '--config', join(dir, 'c.json')], dir);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, msg);
      assert.equal(r.stdout, '');
    };
    await bad((c) => { delete c.secret; }, /secret is required/);
    await bad((c) => { c.profiles[0].public_keys = ['not a key']; }, /not a PEM public key/);
    await bad((c) => { c.profiles[0].algorithms = ['HS256']; }, /unsupported algorithm/);
    await bad((c) => { c.profiles[0].algorithms = ['ES256']; }, /fits none of the profile's algorithms/);
    await bad((c) => { c.profiles[0].public_keys = Array(6).fill(c.profiles[0].public_keys[0]); }, /1 to 5 public_keys/);
    await bad((c) => { c.profiles[0].jwks_url = 'ftp://x'; delete c.profiles[0].public_keys; }, /http or https/);
  });

  it('exits 1 when a port is taken', async () => {
    const dir = tmp();
    const blocker = net.createServer();
    await new Promise((res) => blocker.listen(0, '127.0.0.1', res));
    try {
      writeFileSync(join(dir, 'c.json'), JSON.stringify(await baseConfig()));
      const r = runSync(['--listen', `127.0.0.1:${blocker.address().port}`, '--control', '127.0.0.1:0', '--dir', dir, '--config', join(dir, 'c.json')], dir);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /cannot listen on --listen/);
    } finally {
      blocker.close();
    }
  });
});
