#!/usr/bin/env node
// Local emulator of Stytch's Trusted Auth Token (attest) and session API.
// Usage: node server.mjs --listen HOST:PORT --control HOST:PORT --dir DIR --config CONFIG.json
import https from 'node:https';
import http from 'node:http';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import { ensureCerts } from './lib/certs.mjs';
import { listen as listenOn, formatAddress } from './lib/loopback.mjs';
import { parseConfig, parseRuntimeConfig, ConfigError } from './lib/config.mjs';
import { StytchApi } from './lib/stytch.mjs';
import { Faults, FaultSpecError } from './lib/faults.mjs';
import { ProjectKeys } from './lib/projectkeys.mjs';
import {
  clock, newId, errorBody, defaultErrorFor, readBody, sendJson, sleep, StytchError, isPlainObject,
} from './lib/util.mjs';

const USAGE = 'usage: node server.mjs --listen HOST:PORT --control HOST:PORT --dir DIR --config CONFIG.json';

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const m = a.match(/^--(listen|control|dir|config)(?:=(.*))?$/);
    if (!m) throw new Error(`unknown argument ${a}`);
    out[m[1]] = m[2] ?? argv[++i];
    if (out[m[1]] === undefined) throw new Error(`missing value for --${m[1]}`);
  }
  for (const k of ['listen', 'control', 'dir', 'config']) if (!out[k]) throw new Error(`--${k} is required`);
  return out;
}

function hostPort(s, what) {
  const m = s.match(/^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/);
  if (!m) throw new Error(`--${what} must be HOST:PORT`);
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}

const log = (msg) => process.stderr.write(`stytch-emulator: ${msg}\n`);

function main() {
  let args; let config;
  try {
    args = parseArgs(process.argv.slice(2));
    config = parseConfig(JSON.parse(readFileSync(args.config, 'utf8')));
  } catch (e) {
    process.stderr.write(`stytch-emulator: ${e instanceof ConfigError ? 'config: ' : ''}${e.message}\n${USAGE}\n`);
    process.exit(2);
  }
  const listen = hostPort(args.listen, 'listen');
  const control = hostPort(args.control, 'control');
  const dir = resolve(args.dir);
  const readyFile = join(dir, 'ready');
  rmSync(readyFile, { force: true });

  const certs = ensureCerts(dir);
  log(`${certs.generated ? 'generated' : 'reusing'} CA ${certs.caCert} and server certificate`);
  const projectKeys = new ProjectKeys(dir);
  const api = new StytchApi(config, projectKeys.list);
  const faults = new Faults();
  let calls = [];
  let seq = 0;
  const stalled = new Set();
  const expectedAuth = Buffer.from(`${config.project_id}:${config.secret}`);

  function authState(header) {
    if (!header) return 'missing';
    const m = /^Basic\s+(\S+)\s*$/i.exec(header);
    if (!m) return 'bad';
    const got = Buffer.from(m[1], 'base64');
    return got.length === expectedAuth.length && timingSafeEqual(got, expectedAuth) ? 'ok' : 'bad';
  }

  function redactHeaders(h) {
    const out = {};
    for (const [k, v] of Object.entries(h)) {
      out[k] = k === 'authorization' ? (/^basic\s/i.test(String(v)) ? 'Basic <redacted>' : '<redacted>') : v;
    }
    return out;
  }

  // ---- Stytch listener ------------------------------------------------------
  async function onStytchRequest(req, res) {
    const path = new URL(req.url, 'https://localhost').pathname;
    const raw = await readBody(req);
    const call = {
      seq: ++seq, time: new Date(clock.now()).toISOString(), method: req.method, path,
      headers: redactHeaders(req.headers), body: null, auth: authState(req.headers.authorization),
      status: null, error_type: null, token_id: null, outcome: null, fault: null,
    };
    calls.push(call);
    let body; let bodyError;
    if (raw === null) {
      bodyError = 'The request body is too large.';
      call.body = '<too large>';
    } else if (raw.length === 0) {
      body = {};
    } else {
      const text = raw.toString('utf8');
      try { body = JSON.parse(text); call.body = body; } catch {
        bodyError = 'The request body is not valid JSON.';
        call.body = text;
      }
    }
    const done = (status, errorType, outcome) => {
      call.status = status;
      call.error_type = errorType ?? null;
      call.outcome = outcome;
      log(`${req.method} ${path} ${status ?? '-'} ${errorType ?? '-'}${call.fault ? ` fault=${call.fault}` : ''}`);
    };

    const fault = faults.take(path);
    if (fault) {
      call.fault = fault.mode;
      switch (fault.mode) {
        case 'latency':
          await sleep(fault.latency_ms);
          break;
        case 'status':
        case 'rate_limit': {
          if (fault.latency_ms) await sleep(fault.latency_ms);
          const status = fault.mode === 'rate_limit' ? 429 : fault.status;
          const [dType, dMsg] = defaultErrorFor(status);
          const type = fault.error_type ?? dType;
          const headers = fault.retry_after !== null && fault.retry_after !== undefined ? { 'Retry-After': String(fault.retry_after) } : {};
          sendJson(res, status, errorBody(status, type, type === dType ? dMsg : `Emulated ${type}.`), headers);
          return done(status, type, fault.mode);
        }
        case 'malformed_json': {
          const text = `{"status_code":200,"request_id":"${newId('request-id')}","user_id":user-test-<not json>`;
          res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
          res.end(text);
          return done(200, null, fault.mode);
        }
        case 'truncated': {
          const full = Buffer.from(JSON.stringify({
            status_code: 200, request_id: newId('request-id'), user_id: newId('user'),
            session_token: '', session_jwt: '', user: { user_id: 'user-test-truncated', padding: 'x'.repeat(2048) },
          }));
          res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': full.length });
          res.write(full.subarray(0, full.length >> 1), () => res.socket?.end());
          return done(200, null, fault.mode);
        }
        case 'reset_before_headers':
          req.socket.destroy();
          return done(null, null, fault.mode);
        case 'reset_after_headers':
          res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': 4096 });
          res.flushHeaders();
          setTimeout(() => req.socket.destroy(), 50);
          return done(200, null, fault.mode);
        case 'stall':
          stalled.add(req.socket);
          req.socket.once('close', () => stalled.delete(req.socket));
          return done(null, null, fault.mode);
        default:
          break; // oversized: handled after the normal answer is built
      }
    }

    let status; let out; let errorType = null; const headers = {};
    const ctx = { auth: call.auth, bodyError, tokenId: null };
    try {
      ({ status, body: out } = await api.handle(req.method, path, body, ctx));
    } catch (e) {
      if (e instanceof StytchError) {
        status = e.status;
        errorType = e.errorType;
        out = errorBody(e.status, e.errorType, e.message, e.details);
      } else {
        log(`internal error on ${req.method} ${path}: ${e.stack || e}`);
        status = 500;
        errorType = 'internal_server_error';
        out = errorBody(500, errorType, 'Internal error in the emulator.');
      }
    }
    call.token_id = ctx.tokenId;
    if (fault?.mode === 'reset_after_processing') {
      // Stytch read and processed the call (a token id is consumed), then
      // the connection drops before the answer: a retry is a replay
      req.socket.destroy();
      return done(null, errorType, fault.mode);
    }
    if (fault?.mode === 'oversized') {
      // pad a copy (the stored user/member objects are not touched) to about 1 MB
      out = structuredClone(out);
      const padding = 'x'.repeat(1 << 20);
      if (isPlainObject(out.user)) out.user.trusted_metadata = { ...out.user.trusted_metadata, padding };
      else if (isPlainObject(out.member)) out.member.trusted_metadata = { ...out.member.trusted_metadata, padding };
      else out.padding = padding;
    }
    sendJson(res, status, out, headers);
    done(status, errorType, fault?.mode === 'oversized' ? 'oversized' : (status < 400 ? 'ok' : 'error'));
  }

  // ---- control listener -----------------------------------------------------
  async function onControlRequest(req, res) {
    const url = new URL(req.url, 'http://localhost');
    const route = `${req.method} ${url.pathname}`;
    let body = {};
    const raw = await readBody(req);
    if (raw && raw.length) {
      try { body = JSON.parse(raw.toString('utf8')); } catch {
        return sendJson(res, 400, { ok: false, error: 'body is not valid JSON' });
      }
    }
    try {
      switch (route) {
        case 'GET /health':
          return sendJson(res, 200, { ok: true });
        case 'GET /calls': {
          const p = url.searchParams.get('path');
          const since = Number(url.searchParams.get('since') ?? 0);
          return sendJson(res, 200, { calls: calls.filter((c) => (!p || c.path === p) && c.seq > since) });
        }
        case 'DELETE /calls':
          calls = [];
          return sendJson(res, 200, { ok: true });
        case 'GET /faults':
          return sendJson(res, 200, { faults: faults.list });
        case 'POST /faults':
          return sendJson(res, 200, { ok: true, fault: faults.add(body) });
        case 'DELETE /faults':
          faults.clear();
          return sendJson(res, 200, { ok: true });
        case 'POST /reset':
          api.reset();
          api.jwks.clear();
          faults.clear();
          calls = [];
          return sendJson(res, 200, { ok: true });
        case 'GET /clock':
          return sendJson(res, 200, { now: new Date(clock.now()).toISOString(), offset_seconds: clock.offsetMs / 1000 });
        case 'POST /clock': {
          if (!Number.isFinite(body.offset_seconds)) return sendJson(res, 400, { ok: false, error: 'offset_seconds must be a number' });
          clock.offsetMs = body.offset_seconds * 1000;
          return sendJson(res, 200, { ok: true, now: new Date(clock.now()).toISOString(), offset_seconds: body.offset_seconds });
        }
        case 'GET /state':
          return sendJson(res, 200, {
            ...api.counts(), calls: calls.length, faults: faults.list.length,
            jwks_fetches: api.jwks.fetches.length, clock_offset_seconds: clock.offsetMs / 1000,
          });
        case 'GET /call_counts': {
          // per route ("METHOD PATH"), with the outcomes; since=SEQ counts later calls only
          const since = Number(url.searchParams.get('since') ?? 0);
          const counts = {};
          for (const c of calls) {
            if (c.seq <= since) continue;
            const k = `${c.method} ${c.path}`;
            counts[k] ??= { total: 0, ok: 0, error: 0, fault: 0 };
            counts[k].total++;
            // ok: a 2xx; error: a Stytch error answer; fault: a fault replaced the answer
            if (c.outcome === 'ok' || c.outcome === 'oversized') counts[k].ok++;
            else if (c.outcome === 'error') counts[k].error++;
            else counts[k].fault++;
          }
          return sendJson(res, 200, { counts, last_seq: seq });
        }
        case 'GET /config':
          return sendJson(res, 200, {
            project_id: api.config.project_id,
            session_jwt_lifetime_seconds: api.config.session_jwt_lifetime_seconds,
            max_token_lifetime_seconds: api.config.max_token_lifetime_seconds,
            clock_skew_seconds: api.config.clock_skew_seconds,
            custom_claims_reserved: api.config.custom_claims_reserved,
            rbac_roles: api.config.rbac_roles,
            rbac_policy: api.policy(false),
            b2b_rbac_policy: api.policy(true),
            profiles: [...api.config.profiles.keys()],
            organizations: [...api.config.organizations.keys()],
          });
        case 'GET /project_keys':
          return sendJson(res, 200, { current: projectKeys.current.kid, kids: projectKeys.kids });
        case 'POST /project_keys/rotate': {
          let previous;
          try { previous = projectKeys.rotate(body.kid); } catch (e) { return sendJson(res, 400, { ok: false, error: e.message }); }
          api.keys = projectKeys.list;
          log(`project key rotated: ${projectKeys.current.kid} signs, ${previous} still served`);
          return sendJson(res, 200, { ok: true, current: projectKeys.current.kid, previous, kids: projectKeys.kids });
        }
        case 'POST /project_keys/retire': {
          let removed;
          try { removed = projectKeys.retire(body.kid); } catch (e) { return sendJson(res, 400, { ok: false, error: e.message }); }
          api.keys = projectKeys.list;
          log(`project key(s) retired: ${removed.join(', ') || 'none'}`);
          return sendJson(res, 200, { ok: true, current: projectKeys.current.kid, removed, kids: projectKeys.kids });
        }
        case 'GET /jwks_fetches':
          return sendJson(res, 200, { fetches: api.jwks.fetches });
        case 'DELETE /sessions':
          return sendJson(res, 200, { ok: true, revoked: api.revokeAllSessions() });
        case 'POST /config': {
          const rt = parseRuntimeConfig(body);
          Object.assign(api.config, rt);
          api.jwks.clear();
          return sendJson(res, 200, {
            ok: true, profiles: api.config.profiles.size, organizations: api.config.organizations.size,
            session_jwt_lifetime_seconds: api.config.session_jwt_lifetime_seconds,
          });
        }
        default:
          return sendJson(res, 404, { ok: false, error: `no control route ${route}` });
      }
    } catch (e) {
      if (e instanceof FaultSpecError || e instanceof ConfigError) return sendJson(res, 400, { ok: false, error: e.message });
      log(`control error on ${route}: ${e.stack || e}`);
      return sendJson(res, 500, { ok: false, error: 'internal error' });
    }
  }

  const wrap = (fn) => (req, res) => {
    fn(req, res).catch((e) => {
      log(`unhandled error: ${e.stack || e}`);
      try { res.destroy(); } catch { /* ignore */ }
    });
  };
  const stytchServer = https.createServer({
    key: readFileSync(certs.serverKey),
    cert: readFileSync(certs.serverCert),
  }, wrap(onStytchRequest));
  const controlServer = http.createServer(wrap(onControlRequest));
  for (const s of [stytchServer, controlServer]) {
    s.on('clientError', (err, socket) => { if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n'); });
  }
  stytchServer.on('tlsClientError', () => { /* handshake failures are the client's business */ });

  // "localhost" listens on every loopback address that name may reach
  // (lib/loopback.mjs): clients that name localhost connect to whichever
  // comes first, ::1 on a stock Debian 12
  const listening = [[stytchServer, listen, 'listen'], [controlServer, control, 'control']]
    .map(([s, hp, what]) => listenOn(s, hp.host, hp.port).catch((e) => {
      log(`cannot listen on --${what} ${hp.host}:${hp.port}: ${e.message}`);
      process.exit(1);
    }));
  Promise.all(listening).then(([l, c]) => {
    const where = (r, scheme) => r.addresses.map((a) => `${scheme}://${formatAddress(a, r.port)}`).join(' and ');
    writeFileSync(readyFile, `${JSON.stringify({
      pid: process.pid, listen: formatAddress(l.addresses[0], l.port), control: formatAddress(c.addresses[0], c.port),
      listen_port: l.port, control_port: c.port, listen_addresses: l.addresses, control_addresses: c.addresses,
      ca: certs.caCert,
    })}\n`);
    for (const [r, what] of [[l, 'listen'], [c, 'control']]) {
      if (r.absent.length) log(`--${what}: no ${r.absent.join(', ')} on this machine, not listening there`);
    }
    log(`Stytch API on ${where(l, 'https')}, control on ${where(c, 'http')}, ${config.profiles.size} profile(s)`);
    process.stdout.write('emulator ready\n');
  });

  let stopping = false;
  const stop = (sig) => {
    if (stopping) return;
    stopping = true;
    log(`${sig}: shutting down`);
    rmSync(readyFile, { force: true });
    for (const sock of stalled) sock.destroy();
    let open = 2;
    const closed = () => { if (--open === 0) process.exit(0); };
    for (const s of [stytchServer, controlServer]) {
      s.close(closed);
      s.closeAllConnections();
    }
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main();
