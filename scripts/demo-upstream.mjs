#!/usr/bin/env node
// Demo upstream for `make run`: answers every request with a JSON echo of
// its method, URL and request headers, so you can see what nginx handed on
// (the X-Stytch-* headers set by ngx_http_stytch_tat_module in particular).
//
//   node scripts/demo-upstream.mjs [--listen localhost:8081]
//
// No dependencies. Loopback only: it echoes session JWTs back to the caller.
// "localhost" listens on 127.0.0.1 and ::1 alike (t/emulator/lib/loopback.mjs):
// a client naming localhost reaches it whichever address comes first.

import http from 'node:http';
import { listen, formatAddress } from '../t/emulator/lib/loopback.mjs';

function parseListen(argv) {
  let listen = process.env.DEMO_UPSTREAM_LISTEN || 'localhost:8081';
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--listen' && argv[i + 1]) listen = argv[++i];
    else if (argv[i].startsWith('--listen=')) listen = argv[i].slice(9);
    else {
      process.stderr.write(`usage: demo-upstream.mjs [--listen HOST:PORT]\n`);
      process.exit(2);
    }
  }
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m) {
    process.stderr.write(`demo-upstream: bad --listen "${listen}"\n`);
    process.exit(2);
  }
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

const { host, port } = parseListen(process.argv.slice(2));

// The session JWT's claims, decoded to show them (custom claims at the top
// level, the session under https://stytch.com/session); NOT verified: an
// application verifies it against Stytch's JWKS.
function jwtPayload(jwt) {
  const part = typeof jwt === 'string' ? jwt.split('.')[1] : undefined;
  if (!part) return undefined;
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

const server = http.createServer((req, res) => {
  // headers as received: rawHeaders keeps the sender's spelling and repeats
  const headers = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i];
    const value = req.rawHeaders[i + 1];
    if (name in headers) {
      headers[name] = [].concat(headers[name], value);
    } else {
      headers[name] = value;
    }
  }

  // drain the body, only its size is reported
  let bodyBytes = 0;
  req.on('data', (chunk) => { bodyBytes += chunk.length; });
  req.on('end', () => {
    const out = { method: req.method, url: req.url, headers, body_bytes: bodyBytes };
    const claims = jwtPayload(req.headers['x-stytch-session-jwt']);
    if (claims) out.session_jwt_payload_unverified = claims;
    const echo = JSON.stringify(out, null, 2) + '\n';
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(echo),
      'Cache-Control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : echo);
  });
});

listen(server, host, port).then((l) => {
  const on = l.addresses.map((a) => formatAddress(a, l.port)).join(' and ');
  process.stdout.write(`demo upstream ready on ${on}\n`);
}, (err) => {
  process.stderr.write(`demo-upstream: ${err.message}\n`);
  process.exit(1);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections?.();
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
