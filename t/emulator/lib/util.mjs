// Small helpers shared by the emulator's modules.
import { randomUUID, randomBytes } from 'node:crypto';

// The emulator's clock: real time plus an offset settable over the control API.
export const clock = {
  offsetMs: 0,
  now() { return Date.now() + this.offsetMs; },
  nowSeconds() { return Math.floor(this.now() / 1000); },
};

export const newId = (prefix) => `${prefix}-test-${randomUUID()}`;
export const requestId = () => newId('request-id');

// Opaque 44-character session token (33 random bytes in base64url).
export const newSessionToken = () => randomBytes(33).toString('base64url');

// RFC 3339 UTC timestamp with second precision, e.g. 2026-11-28T20:31:40Z.
export const rfc3339 = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

// An error that becomes a Stytch-shaped error response.
export class StytchError extends Error {
  constructor(status, errorType, message, details) {
    super(message);
    this.status = status;
    this.errorType = errorType;
    this.details = details;
  }
}

export function errorBody(status, errorType, message, details) {
  const body = {
    status_code: status,
    request_id: requestId(),
    error_type: errorType,
    error_message: message,
    error_url: `https://stytch.com/docs/api/errors/${status}#${errorType}`,
  };
  if (details !== undefined) body.error_details = details;
  return body;
}

// Default error type and message for a bare status code (faults).
export function defaultErrorFor(status) {
  switch (status) {
    case 400: return ['bad_request', 'The submitted request is invalid.'];
    case 401: return ['unauthorized_credentials', 'Unauthorized credentials.'];
    case 403: return ['forbidden', 'Forbidden.'];
    case 404: return ['not_found', 'Not found.'];
    case 429: return ['too_many_requests', 'Too many requests have been made.'];
    case 500: return ['internal_server_error', 'Oops, something seems to have gone wrong, please reach out to support to let us know what went wrong.'];
    case 502: return ['bad_gateway', 'Bad gateway.'];
    case 503: return ['server_unavailable', 'The service is temporarily unavailable.'];
    case 504: return ['gateway_timeout', 'Gateway timeout.'];
    default: return [status >= 500 ? 'internal_server_error' : 'bad_request', `Emulated error ${status}.`];
  }
}

// Read a request body up to `limit` bytes; resolves to a Buffer, or null when
// the body was larger than the limit (the rest is drained).
export function readBody(req, limit = 1 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    let over = false;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) { over = true; chunks.length = 0; return; }
      if (!over) chunks.push(c);
    });
    req.on('end', () => resolve(over ? null : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function sendJson(res, status, obj, extraHeaders = {}) {
  const data = Buffer.from(JSON.stringify(obj));
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': data.length,
    ...extraHeaders,
  });
  res.end(data);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// Shorten a token-like value for logs: never log a full token.
export function shortToken(v) {
  if (typeof v !== 'string') return String(v);
  return v.length <= 12 ? `${v.slice(0, 3)}...` : `${v.slice(0, 8)}...(${v.length})`;
}
