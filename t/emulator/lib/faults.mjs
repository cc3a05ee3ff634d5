// Fault injection for the Stytch listener, driven by the control API.
import { isPlainObject } from './util.mjs';

export const FAULT_MODES = ['latency', 'status', 'rate_limit', 'malformed_json', 'truncated',
  'oversized', 'reset_before_headers', 'reset_after_headers', 'reset_after_processing', 'stall'];

export class FaultSpecError extends Error {}

export class Faults {
  constructor() { this.clear(); }

  clear() { this.list = []; this.nextId = 1; }

  add(spec) {
    if (!isPlainObject(spec)) throw new FaultSpecError('fault must be a JSON object');
    const { mode } = spec;
    if (!FAULT_MODES.includes(mode)) throw new FaultSpecError(`mode must be one of ${FAULT_MODES.join(', ')}`);
    const f = { id: this.nextId++, mode, path: null, count: null, applied: 0 };
    if (spec.path !== undefined && spec.path !== null) {
      if (typeof spec.path !== 'string' || !spec.path.startsWith('/')) throw new FaultSpecError('path must be a string starting with /');
      f.path = spec.path;
    }
    if (spec.count !== undefined && spec.count !== null) {
      if (!Number.isInteger(spec.count) || spec.count < 1) throw new FaultSpecError('count must be a positive integer');
      f.count = spec.count;
    }
    const intField = (name, dflt, min, max) => {
      const v = spec[name];
      if (v === undefined || v === null) return dflt;
      if (!Number.isInteger(v) || v < min || v > max) throw new FaultSpecError(`${name} must be an integer in ${min}..${max}`);
      return v;
    };
    if (mode === 'latency') f.latency_ms = intField('latency_ms', 1000, 0, 3600000);
    if (mode === 'status') f.status = intField('status', 500, 400, 599);
    if (mode === 'status' || mode === 'rate_limit') {
      // a slow refusal: those waiting on the call see its outcome
      f.latency_ms = intField('latency_ms', 0, 0, 3600000);
      if (spec.error_type !== undefined && spec.error_type !== null) {
        if (typeof spec.error_type !== 'string' || !spec.error_type) throw new FaultSpecError('error_type must be a non-empty string');
        f.error_type = spec.error_type;
      }
      f.retry_after = intField('retry_after', null, 0, 86400 * 366);
    }
    this.list.push(f);
    return f;
  }

  // The first fault that applies to PATH, consuming one of its uses.
  take(path) {
    const i = this.list.findIndex((f) => f.path === null || f.path === path);
    if (i < 0) return null;
    const f = this.list[i];
    f.applied++;
    if (f.count !== null && f.applied >= f.count) this.list.splice(i, 1);
    return f;
  }
}
