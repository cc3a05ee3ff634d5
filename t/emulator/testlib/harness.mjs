// Test helpers: start/stop the emulator, talk to its control API, make
// plain HTTPS requests that trust its CA, and mint Trusted Auth Tokens.
import { spawn } from 'node:child_process';
import { readFileSync, existsSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import https from 'node:https';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';

export const EMULATOR_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SERVER = join(EMULATOR_DIR, 'server.mjs');

// Start the emulator on free ports; resolves once it printed "emulator ready".
export async function startEmulator(dir, config, { timeoutMs = 20000 } = {}) {
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  // localhost: the API on every loopback address, as emu.baseUrl names it
  const proc = spawn(process.execPath, [SERVER, '--listen', 'localhost:0', '--control', '127.0.0.1:0',
    '--dir', dir, '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const emu = { proc, dir, stdout: '', stderr: '', exited: null };
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => { emu.stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => { emu.exited = { code, signal }; resolve(emu.exited); }));
  emu.waitExit = () => exited;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`emulator not ready in time; stderr:\n${emu.stderr}`)), timeoutMs);
    proc.stdout.on('data', (d) => {
      emu.stdout += d;
      if (emu.stdout.includes('emulator ready\n')) { clearTimeout(timer); resolve(); }
    });
    exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`emulator exited with ${code}; stderr:\n${emu.stderr}`)); });
  });
  const ready = JSON.parse(readFileSync(join(dir, 'ready'), 'utf8'));
  emu.ready = ready;
  emu.ca = readFileSync(join(dir, 'ca.pem'));
  emu.baseUrl = `https://localhost:${ready.listen_port}`;
  emu.controlUrl = `http://127.0.0.1:${ready.control_port}`;
  emu.control = (method, path, body) => controlRequest(emu.controlUrl, method, path, body);
  emu.request = (method, path, opts = {}) => httpsRequest({ ...opts, ca: emu.ca, port: ready.listen_port, method, path });
  emu.stop = async () => {
    if (emu.exited) return emu.exited;
    proc.kill('SIGTERM');
    return exited;
  };
  emu.readyFileExists = () => existsSync(join(dir, 'ready'));
  return emu;
}

export function controlRequest(base, method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const req = http.request(`${base}${path}`, {
      method, headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(data ?? undefined);
  });
}

// A plain HTTPS request to the emulator. Resolves to
// { status, headers, text, bytes, error } where `error` is set when the
// connection failed or the body arrived incomplete (headers may still be set).
export function httpsRequest({ ca, host = '127.0.0.1', port, method, path, body, auth, timeoutMs = 5000, servername = 'localhost', rawBody }) {
  return new Promise((resolve) => {
    const data = rawBody !== undefined ? Buffer.from(rawBody) : body === undefined ? null : Buffer.from(JSON.stringify(body));
    const headers = {};
    if (data) { headers['content-type'] = 'application/json'; headers['content-length'] = data.length; }
    if (auth) headers.authorization = `Basic ${Buffer.from(auth).toString('base64')}`;
    const out = { status: null, headers: null, text: '', bytes: 0, error: null };
    let settled = false;
    const finish = () => { if (!settled) { settled = true; resolve(out); } };
    const tlsOpts = { host, port, method, path, ca, headers, agent: false };
    if (servername) tlsOpts.servername = servername; // else the IP address SAN is checked
    const req = https.request(tlsOpts, (res) => {
      out.status = res.statusCode;
      out.headers = res.headers;
      const chunks = [];
      res.on('data', (c) => { chunks.push(c); out.bytes += c.length; });
      res.on('end', () => { out.text = Buffer.concat(chunks).toString('utf8'); finish(); });
      res.on('aborted', () => { out.error ??= 'aborted'; });
      res.on('error', (e) => { out.error ??= e.code || e.message; out.text = Buffer.concat(chunks).toString('utf8'); finish(); });
      res.on('close', () => { if (!res.complete) out.error ??= 'incomplete'; out.text = Buffer.concat(chunks).toString('utf8'); finish(); });
    });
    req.setTimeout(timeoutMs, () => { out.error = 'timeout'; req.destroy(); finish(); });
    req.on('error', (e) => { out.error ??= e.code || e.message; finish(); });
    req.end(data ?? undefined);
  });
}

// Mint a Trusted Auth Token the way Stytch's docs show it (jose SignJWT).
export async function mintTat(key, {
  alg = 'RS256', kid, iss = 'https://auth.example.com', aud = 'https://api.example.com',
  sub, email = 'alice@example.com', jti = randomUUID(),
  iat, exp, nbf, extra = {}, noExp = false, noJti = false,
} = {}) {
  const now = Math.floor(Date.now() / 1000);
  // one external id per email: Stytch refuses an external id another user has
  sub ??= `ext-${String(email ?? 'none').replace(/[^A-Za-z0-9._-]/g, '_')}`;
  const claims = { email, assignments: ['reader', 'writer'], ...extra };
  if (email === null) delete claims.email;
  const header = { alg, typ: 'JWT' };
  if (kid) header.kid = kid;
  const j = new SignJWT(claims).setProtectedHeader(header).setIssuer(iss).setAudience(aud).setSubject(sub)
    .setIssuedAt(iat ?? now);
  if (!noJti) j.setJti(jti);
  if (!noExp) j.setExpirationTime(exp ?? now + 300);
  if (nbf !== undefined) j.setNotBefore(nbf);
  return j.sign(key);
}

// A small HTTP server serving a mutable JWKS document; counts the fetches.
export async function startJwksServer() {
  const state = { keys: [], hits: 0, status: 200 };
  const server = http.createServer((req, res) => {
    state.hits++;
    const data = JSON.stringify({ keys: state.keys });
    res.writeHead(state.status, { 'content-type': 'application/json' });
    res.end(data);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${server.address().port}/.well-known/jwks.json`;
  state.close = () => new Promise((r) => { server.closeAllConnections(); server.close(r); });
  return state;
}
