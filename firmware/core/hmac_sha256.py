# HMAC-SHA256 (RFC 2104) on hashlib.sha256: MicroPython has no hmac module.
import hashlib

from micropython import const

_BLOCK = const(64)  # SHA-256 block size in bytes: keys are padded (or first hashed) to this


def _pad(key, byte):
    return bytes(b ^ byte for b in key)


def digest(key, msg):
    """HMAC-SHA256 of msg under key (both bytes): 32 bytes."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = bytes(key) + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(_pad(key, 0x36))
    inner.update(msg)
    outer = hashlib.sha256(_pad(key, 0x5C))
    outer.update(inner.digest())
    return outer.digest()


def equal(a, b):
    """Compare two byte strings in time that does not depend on where they differ."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
