// listen(server, host, port): server.listen, except that the host
// "localhost" means every loopback address a client may reach under that
// name, on one port: 127.0.0.1, ::1, and whatever else localhost resolves to
// here that is loopback.
//
// Why: a client connects to the first address localhost resolves to, and on
// a stock Debian 12 (/etc/hosts has "::1 localhost") that is ::1; Node 18
// does not fall back to 127.0.0.1 (Node 20 does), so a server on 127.0.0.1
// alone refuses it.  A machine without IPv6 on loopback just has no ::1
// listener: no client there can resolve localhost to ::1 and reach it.
//
// The other addresses are plain net servers that hand each connection to
// `server` ('connection' is the documented way to inject one into an
// http, https or tls server), so one request handler, one connection list
// (closeAllConnections) and one server.close() cover them all.
import net from 'node:net';
import dns from 'node:dns';

// errors that mean "this machine has no such address", not "taken"
const ABSENT = new Set(['EADDRNOTAVAIL', 'EAFNOSUPPORT', 'EPROTONOSUPPORT']);
const ATTEMPTS = 20;

const isLoopback = (a) => (net.isIPv4(a) && a.startsWith('127.')) || a === '::1';
const fmt = (a, port) => (net.isIPv6(a) ? `[${a}]:${port}` : `${a}:${port}`);

async function loopbackAddresses() {
  const out = ['127.0.0.1', '::1'];
  try {
    const found = await dns.promises.lookup('localhost', { all: true });
    for (const { address } of found) if (isLoopback(address) && !out.includes(address)) out.push(address);
  } catch { /* localhost unresolvable: the two above are still what URLs name */ }
  return out;
}

function listenOnce(server, port, host) {
  return new Promise((resolve, reject) => {
    const onError = (e) => { server.off('listening', onListening); reject(e); };
    const onListening = () => { server.off('error', onError); resolve(); };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

const closeQuietly = (s) => new Promise((r) => { try { s.close(() => r()); } catch { r(); } });

// Resolves to { port, addresses, absent } once every listener is up, where
// addresses are those listened on and absent the loopback addresses this
// machine lacks; rejects with the listen error (its message names the
// address) otherwise.  Port 0 picks one free on all of them.
export async function listen(server, host, port) {
  if (host !== 'localhost') {
    await listenOnce(server, port, host);
    return { port: server.address().port, addresses: [server.address().address], absent: [] };
  }
  const [first, ...others] = await loopbackAddresses();
  for (let attempt = 1; ; attempt++) {
    await listenOnce(server, port, first);
    const chosen = server.address().port;
    const extra = [];
    const absent = [];
    let failure = null;
    for (const a of others) {
      const s = net.createServer({
        noDelay: server.noDelay,
        keepAlive: server.keepAlive,
        keepAliveInitialDelay: (server.keepAliveInitialDelay || 0) * 1000,
      }, (socket) => server.emit('connection', socket));
      s.on('error', () => { /* after listening: nothing to do */ });
      try {
        await listenOnce(s, chosen, a);
        extra.push(s);
      } catch (e) {
        if (ABSENT.has(e.code)) { absent.push(a); continue; }
        failure = e;
        break;
      }
    }
    if (!failure) {
      wrapClose(server, extra);
      return { port: chosen, addresses: [first, ...extra.map((s) => s.address().address)], absent };
    }
    await Promise.all([server, ...extra].map(closeQuietly));
    // a port picked on 127.0.0.1 may be taken on ::1: pick another
    if (port !== 0 || failure.code !== 'EADDRINUSE' || attempt >= ATTEMPTS) {
      if (!failure.message.includes(String(chosen))) failure.message += ` (${fmt(failure.address, chosen)})`;
      throw failure;
    }
  }
}

// server.close() stops the other listeners too; its callback runs once all
// of them have closed
function wrapClose(server, extra) {
  if (!extra.length) return;
  const close = server.close;
  server.close = function closeAll(cb) {
    let open = extra.length + 1;
    let error;
    const done = (e) => {
      error ??= e;
      if (--open === 0 && cb) cb(error);
    };
    for (const s of extra) s.close(done);
    return close.call(this, done);
  };
}

export { fmt as formatAddress };
