// Load client for the soaks: a fixed number of requests (or a fixed time),
// a fixed number in flight, one HTTP/1.1 keep-alive connection per slot.
// Every request carries an identity in X-Email / X-User / X-Groups:
//
//   --identities distinct   a new identity per request (PREFIX-N)
//   --identities cycle:K    K identities in turn (PREFIX-0 .. PREFIX-(K-1))
//
// Prints one JSON line: statuses, the module's $stytch_tat_cache_status and
// $stytch_tat_error (from the X-Soak-Cache / X-Soak-Error headers the soak
// configs add), Retry-After values, transport errors, retries, rate.
//
// --retry-idle-close retries a request once, and only when it failed on a
// reused keep-alive connection before any byte of the answer arrived
// (ECONNRESET, EPIPE), on a new connection: the server closed an idle
// connection as the request was sent (nginx does so to its idle keep-alive
// connections on reload), so the server never read it. RFC 9112 9.3.1
// allows a client to retry then. Every other failure counts as an error.
//
// Bounded: --total requests at most, and --max-seconds in all (the run
// stops by itself, in-flight requests are abandoned and counted).
import http from 'node:http';

function parse(argv) {
  const o = { url: null, total: 0, duration: 0, concurrency: 50, identities: 'distinct',
    prefix: `soak-${process.pid}`, maxSeconds: 300, retryIdleClose: false, timeoutMs: 30000 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i];
    switch (a) {
      case '--url': o.url = v(); break;
      case '--total': o.total = Number(v()); break;
      case '--duration': o.duration = Number(v()); break;
      case '--concurrency': o.concurrency = Number(v()); break;
      case '--identities': o.identities = v(); break;
      case '--prefix': o.prefix = v(); break;
      case '--max-seconds': o.maxSeconds = Number(v()); break;
      case '--timeout-ms': o.timeoutMs = Number(v()); break;
      case '--retry-idle-close': o.retryIdleClose = true; break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  if (!o.url) throw new Error('--url is required');
  if (!(o.total > 0) && !(o.duration > 0)) throw new Error('--total or --duration is required');
  if (!(o.maxSeconds > 0)) throw new Error('--max-seconds must be positive');
  return o;
}

const o = parse(process.argv.slice(2));
const url = new URL(o.url);
let cycle = 0;
if (o.identities.startsWith('cycle:')) {
  cycle = Number(o.identities.slice(6));
  if (!(cycle > 0)) throw new Error('--identities cycle:K needs K > 0');
} else if (o.identities !== 'distinct') {
  throw new Error('--identities is distinct or cycle:K');
}

const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency, maxFreeSockets: o.concurrency });
const r = {
  sent: 0, completed: 0, statuses: {}, cache: {}, errors_by_tag: {}, retry_after: {},
  transport_errors: {}, retried: 0, retried_ok: 0, abandoned: 0, seconds: 0, rate: 0,
};
const inc = (m, k) => { m[k] = (m[k] || 0) + 1; };
const start = Date.now();
const hardStop = start + o.maxSeconds * 1000;
const softStop = o.duration > 0 ? start + o.duration * 1000 : Infinity;
let next = 0;
let stopped = false;
const inflight = new Set();

// a retry goes on a new connection: another idle connection of the pool
// may be closing too (a reload closes them all)
const fresh = new http.Agent({ keepAlive: false });

function once(n, viaAgent = agent) {
  const who = cycle ? `${o.prefix}-${n % cycle}` : `${o.prefix}-${n}`;
  return new Promise((resolve) => {
    let got = false; // a byte of the answer arrived
    // reused: an earlier answer came on this connection. (Node's
    // req.reusedSocket misses a socket the agent hands straight to a queued
    // request.)
    let sock = null;
    let reused = false;
    const req = http.request({
      agent: viaAgent, host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'GET',
      headers: { 'X-Email': `${who}@example.com`, 'X-User': who, 'X-Groups': 'editor,reader' },
    }, (res) => {
      got = true;
      res.on('data', () => {});
      res.on('end', () => {
        if (sock) sock.soakUsed = true;
        resolve({ res });
      });
      res.on('error', (err) => resolve({ err, got, reused }));
    });
    req.on('socket', (s) => { sock = s; reused = s.soakUsed === true; });
    inflight.add(req);
    req.setTimeout(o.timeoutMs, () => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })));
    req.on('error', (err) => resolve({ err, got, reused }));
    req.on('close', () => inflight.delete(req));
    req.end();
  });
}

async function slot() {
  for (;;) {
    const now = Date.now();
    if (stopped || now >= softStop || now >= hardStop) return;
    if (o.total > 0 && next >= o.total) return;
    const n = next++;
    r.sent++;
    let out = await once(n);
    if (out.err && o.retryIdleClose && out.reused && !out.got
        && ['ECONNRESET', 'EPIPE'].includes(out.err.code)) {
      r.retried++;
      inc(r.transport_errors, `retried:${out.err.code}`);
      out = await once(n, fresh);
      if (!out.err) r.retried_ok++;
    }
    if (stopped) return;
    if (out.err) {
      // how it failed: on a new or a reused connection, before or after a
      // byte of the answer
      inc(r.transport_errors, `${out.err.code || out.err.message}`
        + `(${out.reused ? 'reused' : 'new'},${out.got ? 'answer-started' : 'no-answer'})`);
      continue;
    }
    const { res } = out;
    r.completed++;
    inc(r.statuses, String(res.statusCode));
    inc(r.cache, res.headers['x-soak-cache'] || '-');
    if (res.statusCode >= 300) inc(r.errors_by_tag, `${res.statusCode}:${res.headers['x-soak-error'] || '-'}`);
    if (res.headers['retry-after'] !== undefined) inc(r.retry_after, res.headers['retry-after']);
  }
}

const timer = setTimeout(() => {
  stopped = true;
  r.abandoned = inflight.size;
  for (const req of inflight) req.destroy();
}, hardStop - start);

await Promise.all(Array.from({ length: o.concurrency }, slot));
clearTimeout(timer);
agent.destroy();
fresh.destroy();
r.seconds = Number(((Date.now() - start) / 1000).toFixed(2));
r.rate = Math.round(r.completed / r.seconds);
r.hit_max_seconds = stopped;
process.stdout.write(`${JSON.stringify(r)}\n`);
