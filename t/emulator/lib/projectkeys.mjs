// The project's session-JWT signing keys, kept in DIR/project-key.json so a
// restart on the same DIR keeps the JWKS.  The file holds the current key
// as {kid, private_pem} (what tools that sign like the project read) and
// every key the JWKS serves, current first, under "keys".
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPairSync, createPrivateKey, createPublicKey } from 'node:crypto';
import { newId } from './util.mjs';

function fromPem(kid, pem) {
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'rsa' || typeof kid !== 'string' || kid === '') throw new Error('bad key');
  return withPublic(kid, privateKey);
}

function withPublic(kid, privateKey) {
  const publicKey = createPublicKey(privateKey);
  const { n, e } = publicKey.export({ format: 'jwk' });
  return {
    kid, privateKey, publicKey,
    jwk: { kty: 'RSA', alg: 'RS256', use: 'sig', kid, n, e, key_ops: ['verify'], x5c: [] },
  };
}

export function newProjectKey(kid = newId('jwk')) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return withPublic(kid, privateKey);
}

export class ProjectKeys {
  constructor(dir) {
    this.file = join(dir, 'project-key.json');
    this.list = [];                   // current first
    try {
      const saved = JSON.parse(readFileSync(this.file, 'utf8'));
      const all = Array.isArray(saved.keys) && saved.keys.length ? saved.keys : [saved];
      this.list = all.map((k) => fromPem(k.kid, k.private_pem));
      if (this.list[0].kid !== saved.kid) throw new Error('current key is not first');
    } catch {
      this.list = [newProjectKey()];
      this.save();
    }
  }

  get current() { return this.list[0]; }
  get kids() { return this.list.map((k) => k.kid); }

  save() {
    const pem = (k) => k.privateKey.export({ type: 'pkcs8', format: 'pem' });
    const doc = {
      kid: this.current.kid,
      private_pem: pem(this.current),
      keys: this.list.map((k) => ({ kid: k.kid, private_pem: pem(k) })),
    };
    const tmp = `${this.file}.${process.pid}`;
    writeFileSync(tmp, JSON.stringify(doc), { mode: 0o600 });
    renameSync(tmp, this.file);
  }

  // a new key signs from now on; the JWKS serves it and the old ones
  rotate(kid) {
    if (kid !== undefined && (typeof kid !== 'string' || !/^[\x21-\x7e]{1,128}$/.test(kid))) {
      throw new Error('kid must be 1 to 128 printable ASCII characters');
    }
    if (kid !== undefined && this.kids.includes(kid)) throw new Error(`kid ${kid} is already in use`);
    const previous = this.current.kid;
    this.list.unshift(newProjectKey(kid));
    this.save();
    return previous;
  }

  // drop every key but the current one (or only the kid given)
  retire(kid) {
    if (kid !== undefined && kid === this.current.kid) throw new Error('the current key cannot be retired');
    if (kid !== undefined && !this.kids.includes(kid)) throw new Error(`no key with kid ${kid}`);
    const removed = this.list.slice(1).filter((k) => kid === undefined || k.kid === kid).map((k) => k.kid);
    this.list = this.list.filter((k) => !removed.includes(k.kid));
    this.save();
    return removed;
  }
}
