// Verify hookd deliveries with Node's standard library only.
// Always verify the raw request bytes (e.g. express.raw({ type: 'application/json' })),
// never re-serialized JSON.
'use strict';
const crypto = require('node:crypto');

const TOLERANCE_SECONDS = 300;

class VerificationError extends Error {
  // code: missing_header, malformed_timestamp, malformed_signature,
  //       timestamp_too_old, timestamp_in_future, no_match
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

function header(headers, name) {
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === name.toLowerCase()) return Array.isArray(v) ? v[0] : v;
  }
  throw new VerificationError('missing_header', `the request has no ${name} header`);
}

function checkTimestamp(value, now, tolerance) {
  if (!/^\s*-?\d+\s*$/.test(value)) throw new VerificationError('malformed_timestamp', `${value} is not unix seconds`);
  const ts = parseInt(value, 10);
  if (now - ts > tolerance) throw new VerificationError('timestamp_too_old', `signed ${now - ts}s ago`);
  if (ts - now > tolerance) throw new VerificationError('timestamp_in_future', `signed ${ts - now}s ahead`);
  return ts;
}

// timingSafeEqual throws on different lengths: compare lengths first.
function safeEqual(a, b) {
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

// hookd's default scheme. secrets: array of strings; body: Buffer of the raw bytes.
function verify(secrets, headers, body, { now = Math.floor(Date.now() / 1000), tolerance = TOLERANCE_SECONDS, prefix = 'X-Hookd' } = {}) {
  const tsValue = header(headers, `${prefix}-Timestamp`);
  const sigValue = header(headers, `${prefix}-Signature`);
  const digests = sigValue.split(',').map((part) => {
    const p = part.trim();
    if (!p.startsWith('sha256=') || !/^[0-9a-fA-F]{64}$/.test(p.slice(7))) {
      throw new VerificationError('malformed_signature', 'expected sha256=<64 hex>');
    }
    return Buffer.from(p.slice(7), 'hex');
  });
  const ts = checkTimestamp(tsValue, now, tolerance);
  const signed = Buffer.concat([Buffer.from(`${ts}.`), body]);
  for (const secret of secrets) {
    const expected = crypto.createHmac('sha256', secret).update(signed).digest();
    if (digests.some((d) => safeEqual(expected, d))) return;
  }
  throw new VerificationError('no_match', 'wrong secret, or the body was changed');
}

// Standard Webhooks scheme. secrets: array of "whsec_..." strings.
function verifyStandard(secrets, headers, body, { now = Math.floor(Date.now() / 1000), tolerance = TOLERANCE_SECONDS } = {}) {
  const id = header(headers, 'webhook-id');
  const tsValue = header(headers, 'webhook-timestamp');
  const sigValue = header(headers, 'webhook-signature');
  const ts = checkTimestamp(tsValue, now, tolerance);
  const digests = sigValue.split(' ').filter((p) => p.startsWith('v1,')).map((p) => {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(p.slice(3))) throw new VerificationError('malformed_signature', 'expected v1,<base64>');
    return Buffer.from(p.slice(3), 'base64');
  });
  if (digests.length === 0) throw new VerificationError('malformed_signature', 'expected v1,<base64>');
  const signed = Buffer.concat([Buffer.from(`${id}.${ts}.`), body]);
  for (const secret of secrets) {
    const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
    const expected = crypto.createHmac('sha256', key).update(signed).digest();
    if (digests.some((d) => safeEqual(expected, d))) return;
  }
  throw new VerificationError('no_match', 'wrong secret, or the body was changed');
}

module.exports = { verify, verifyStandard, VerificationError, TOLERANCE_SECONDS };
