"""Verify hookd deliveries with the Python standard library only.

Two schemes: hookd's default (X-Hookd-Timestamp, X-Hookd-Signature: sha256=<hex>
over "{timestamp}.{body}", comma-separated during a secret rotation) and
Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature: v1,<base64>
over "{id}.{timestamp}.{body}", whsec_ secret, space-separated).

Always verify the raw request bytes, never re-serialized JSON.
"""
import base64
import hashlib
import hmac
import time

TOLERANCE_SECONDS = 300


class VerificationError(Exception):
    """`code` is one of: missing_header, malformed_timestamp, malformed_signature,
    timestamp_too_old, timestamp_in_future, no_match."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


def _header(headers, name):
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    raise VerificationError("missing_header", f"the request has no {name} header")


def _timestamp(value, now, tolerance):
    try:
        ts = int(value.strip())
    except ValueError:
        raise VerificationError("malformed_timestamp", f"{value!r} is not unix seconds")
    if now - ts > tolerance:
        raise VerificationError("timestamp_too_old", f"signed {now - ts}s ago (replayed or delayed)")
    if ts - now > tolerance:
        raise VerificationError("timestamp_in_future", f"signed {ts - now}s ahead (check clock sync)")
    return ts


def verify(secrets, headers, body, now=None, tolerance=TOLERANCE_SECONDS, prefix="X-Hookd"):
    """hookd's default scheme. `secrets`: list of str (several during a rotation);
    `headers`: mapping (case-insensitive lookup); `body`: the raw bytes."""
    now = int(time.time()) if now is None else now
    ts_value = _header(headers, f"{prefix}-Timestamp")
    sig_value = _header(headers, f"{prefix}-Signature")
    digests = []
    for part in sig_value.split(","):
        part = part.strip()
        hex_digest = part[len("sha256="):] if part.startswith("sha256=") else None
        try:
            raw = bytes.fromhex(hex_digest) if hex_digest is not None else b""
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise VerificationError("malformed_signature", "expected sha256=<64 hex>")
        digests.append(raw)
    ts = _timestamp(ts_value, now, tolerance)
    signed = str(ts).encode() + b"." + body
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
        if any(hmac.compare_digest(expected, d) for d in digests):
            return
    raise VerificationError("no_match", "wrong secret, or the body was changed")


def verify_standard(secrets, headers, body, now=None, tolerance=TOLERANCE_SECONDS):
    """Standard Webhooks scheme. `secrets`: list of "whsec_..." strings."""
    now = int(time.time()) if now is None else now
    msg_id = _header(headers, "webhook-id")
    ts_value = _header(headers, "webhook-timestamp")
    sig_value = _header(headers, "webhook-signature")
    ts = _timestamp(ts_value, now, tolerance)
    digests = []
    for part in sig_value.split(" "):
        if part.startswith("v1,"):
            try:
                digests.append(base64.b64decode(part[3:], validate=True))
            except ValueError:
                raise VerificationError("malformed_signature", "expected v1,<base64>")
    if not digests:
        raise VerificationError("malformed_signature", "expected v1,<base64>")
    signed = f"{msg_id}.{ts}.".encode() + body
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected = hmac.new(key, signed, hashlib.sha256).digest()
        if any(hmac.compare_digest(expected, d) for d in digests):
            return
    raise VerificationError("no_match", "wrong secret, or the body was changed")
