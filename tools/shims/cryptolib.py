# CPython stand-in for MicroPython's cryptolib, so firmware/sensor/ccm.py runs unchanged in pytest.
# Only the surface the firmware uses: aes(key, 1) (ECB) with encrypt(in_buf[, out_buf]) and
# decrypt(in_buf[, out_buf]). Like MicroPython, one object either encrypts or decrypts, never both.
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MODE_ECB = 1


class aes:
    def __init__(self, key, mode, IV=None):
        if mode != MODE_ECB:
            raise ValueError("cryptolib shim: only mode 1 (ECB) is provided")
        if len(key) not in (16, 32):
            raise ValueError("key must be 16 or 32 bytes")
        self._cipher = Cipher(algorithms.AES(bytes(key)), modes.ECB())
        self._way = None
        self._ctx = None

    def _run(self, way, in_buf, out_buf):
        if self._way is None:
            self._way = way
            self._ctx = self._cipher.encryptor() if way == "e" else self._cipher.decryptor()
        elif self._way != way:
            raise OSError("can't encrypt & decrypt")  # MicroPython refuses mixing too
        if len(in_buf) % 16:
            raise ValueError("blksize % 16")
        data = self._ctx.update(bytes(in_buf))
        if out_buf is None:
            return data
        if len(out_buf) < len(data):
            raise ValueError("output too small")
        out_buf[:len(data)] = data
        return out_buf

    def encrypt(self, in_buf, out_buf=None):
        return self._run("e", in_buf, out_buf)

    def decrypt(self, in_buf, out_buf=None):
        return self._run("d", in_buf, out_buf)
