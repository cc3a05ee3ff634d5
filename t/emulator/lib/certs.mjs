// TLS material for the emulator: a private CA and a server certificate signed
// by it, made with the openssl command-line tool and reused when still valid.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, renameSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';

// every name and loopback address a client may put in the emulator's URL
export const SERVER_DNS_NAMES = ['localhost', 'stytch.test'];
export const SERVER_IPS = ['127.0.0.1', '::1'];

const CA_CNF = `[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = Stytch emulator test CA
O = stytch-tat-emulator
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
`;

const SERVER_CNF = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
O = stytch-tat-emulator
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,DNS:stytch.test,IP:127.0.0.1,IP:::1
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
`;

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

function samePublicKey(keyPem, cert) {
  const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  const fromCert = cert.publicKey.export({ type: 'spki', format: 'der' });
  return fromKey.equals(fromCert);
}

// True when DIR holds a usable CA + server pair valid for at least a day.
function existingValid(paths) {
  try {
    for (const p of Object.values(paths)) if (!existsSync(p)) return false;
    const ca = new X509Certificate(readFileSync(paths.caCert));
    const srv = new X509Certificate(readFileSync(paths.serverCert));
    const soon = Date.now() + 86400e3;
    if (!ca.ca || new Date(ca.validTo).getTime() < soon) return false;
    if (new Date(srv.validTo).getTime() < soon || new Date(srv.validFrom).getTime() > Date.now()) return false;
    if (!srv.checkIssued(ca) || !srv.verify(ca.publicKey)) return false;
    for (const n of SERVER_DNS_NAMES) if (srv.checkHost(n, { subject: 'never' }) !== n) return false;
    for (const ip of SERVER_IPS) if (srv.checkIP(ip) === undefined) return false;
    if (!samePublicKey(readFileSync(paths.caKey), ca)) return false;
    if (!samePublicKey(readFileSync(paths.serverKey), srv)) return false;
    return true;
  } catch {
    return false;
  }
}

export function certPaths(dir) {
  return {
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
  };
}

// Make sure DIR has ca.pem/ca.key/server.pem/server.key; returns the paths and
// whether they were (re)generated.
export function ensureCerts(dir) {
  mkdirSync(dir, { recursive: true });
  const paths = certPaths(dir);
  if (existingValid(paths)) return { ...paths, generated: false };

  const tmp = join(dir, `.certgen-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    writeFileSync(join(tmp, 'ca.cnf'), CA_CNF);
    writeFileSync(join(tmp, 'server.cnf'), SERVER_CNF);
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '3650',
      '-config', 'ca.cnf', '-keyout', 'ca.key', '-out', 'ca.pem'], tmp);
    openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-sha256',
      '-config', 'server.cnf', '-keyout', 'server.key', '-out', 'server.csr'], tmp);
    openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
      '-set_serial', `0x${BigInt(Date.now()).toString(16)}${Math.floor(Math.random() * 1e6).toString(16)}`,
      '-days', '825', '-sha256', '-extfile', 'server.cnf', '-extensions', 'v3_server',
      '-out', 'server.pem'], tmp);
    for (const [name, dest] of [['ca.key', paths.caKey], ['server.key', paths.serverKey],
      ['ca.pem', paths.caCert], ['server.pem', paths.serverCert]]) {
      renameSync(join(tmp, name), dest);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (!existingValid(paths)) throw new Error(`generated certificates in ${dir} do not verify`);
  return { ...paths, generated: true };
}
