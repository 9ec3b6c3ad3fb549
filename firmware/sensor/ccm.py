# AES-128-CCM (NIST SP 800-38C / RFC 3610) on the AES-ECB block that cryptolib offers on the ESP32
# and the unix port. Fixed to what the Open CGM broadcast uses: 13-byte nonce, 4-byte MIC, no
# associated data. Pure: no I/O; work buffers are allocated once per key to keep the heap flat.
from micropython import const

from cryptolib import aes

_ECB = const(1)        # cryptolib mode 1 = ECB
_NONCE_LEN = const(13)  # 15 - L with L = 2 length octets (messages below 64 KiB)
_MIC_LEN = const(4)
# B0 flags: Adata = 0, M' = (MIC_LEN - 2) / 2 = 1 in bits 3..5, L' = L - 1 = 1 in bits 0..2.
_B0_FLAGS = const(0x09)
# Counter blocks A_i carry only L' in their flags byte.
_A_FLAGS = const(0x01)


class Ccm:
    def __init__(self, key):
        if len(key) != 16:
            raise ValueError("CCM key must be 16 bytes")
        self._ecb = aes(bytes(key), _ECB)
        self._x = bytearray(16)  # CBC-MAC chaining value
        self._s = bytearray(16)  # keystream block E(A_i)

    def _keystream(self, nonce, i):
        s = self._s
        s[0] = _A_FLAGS
        s[1:14] = nonce
        s[14] = i >> 8
        s[15] = i & 0xFF
        self._ecb.encrypt(s, s)
        return s

    def _tag(self, nonce, msg):
        """CBC-MAC of B0 || msg (zero-padded); the first MIC_LEN bytes of the result are T."""
        x = self._x
        n = len(msg)
        x[0] = _B0_FLAGS
        x[1:14] = nonce
        x[14] = n >> 8
        x[15] = n & 0xFF
        ecb = self._ecb
        ecb.encrypt(x, x)
        off = 0
        while off < n:
            end = off + 16 if off + 16 < n else n
            for j in range(off, end):
                x[j - off] ^= msg[j]
            ecb.encrypt(x, x)
            off = end
        return x

    def _ctr(self, nonce, src, n):
        out = bytearray(n)
        off = 0
        i = 1
        while off < n:
            s = self._keystream(nonce, i)
            end = off + 16 if off + 16 < n else n
            for j in range(off, end):
                out[j] = src[j] ^ s[j - off]
            off = end
            i += 1
        return out

    def encrypt(self, nonce, plaintext):
        """Return ciphertext || 4-byte MIC."""
        if len(nonce) != _NONCE_LEN:
            raise ValueError("CCM nonce must be 13 bytes")
        n = len(plaintext)
        out = self._ctr(nonce, plaintext, n)
        t = self._tag(nonce, plaintext)
        s0 = self._keystream(nonce, 0)
        mic = bytearray(_MIC_LEN)
        for k in range(_MIC_LEN):
            mic[k] = t[k] ^ s0[k]
        return bytes(out) + bytes(mic)

    def decrypt(self, nonce, data):
        """data = ciphertext || MIC. Returns the plaintext, or None when the MIC does not verify."""
        if len(nonce) != _NONCE_LEN or len(data) < _MIC_LEN:
            return None
        n = len(data) - _MIC_LEN
        pt = self._ctr(nonce, data, n)
        t = self._tag(nonce, pt)
        s0 = self._keystream(nonce, 0)
        # Constant time: look at every MIC byte whatever the first mismatch, so timing says nothing
        # about how many leading bytes of a forged MIC were right.
        bad = 0
        for k in range(_MIC_LEN):
            bad |= (t[k] ^ s0[k]) ^ data[n + k]
        if bad:
            return None
        return bytes(pt)
