# TLS for the MQTT uplink: CERT_REQUIRED against the CA in mqtt.ca, and the broker's name checked.
#
# Two umqtt.simple APIs exist and the gateway must work with both:
#   1.3.4 (the package index; the host runtime):  MQTTClient(..., ssl=True, ssl_params={...}) and in
#         connect(): `import ussl; sock = ussl.wrap_socket(sock, **ssl_params)`. MicroPython 1.29 has
#         no `ussl` module at all, and its ssl.wrap_socket() would not check a certificate anyway.
#   1.8 (frozen in board firmware):  MQTTClient(..., ssl=<SSLContext>) and in connect():
#         `sock = self.ssl.wrap_socket(sock, server_hostname=self.server)`.
# TlsWrapper serves both: it is passed as `ssl=` (1.8 calls its wrap_socket directly; 1.3.4 only
# tests it for truth), and for 1.3.4 it is also registered as sys.modules["ussl"], so 1.3.4's
# `import ussl` finds it. Either way the same code makes the SSLContext: PROTOCOL_TLS_CLIENT,
# verify_mode CERT_REQUIRED, load_verify_locations(cafile=mqtt.ca), server_hostname =
# mqtt.server_name or mqtt.host.
#
# umqtt hands us mqtt_guard's TimedSocket. We wrap the TCP socket inside it and put the TLS socket
# back in it, so umqtt keeps talking to the TimedSocket: the real-time timeout (set on the TCP socket)
# and the round-trip notes stay in force through TLS, and a hung broker still cannot block the worker
# for longer than mqtt.timeout_s, handshake included.
import binascii
import sys

import ssl as _ssl


def ca_der(path):
    """The CA certificate at path as DER. A PEM file is decoded here: some MicroPython builds'
    mbedTLS parse only DER (the unix port's does: a PEM CA fails with "invalid cert"). Only the
    first certificate of a PEM file is used: configure the one CA that signed the broker."""
    with open(path, "rb") as f:
        data = f.read()
    begin = data.find(b"-----BEGIN CERTIFICATE-----")
    if begin < 0:
        return data  # DER already
    end = data.find(b"-----END CERTIFICATE-----", begin)
    if end < 0:
        raise ValueError("mqtt.ca: PEM certificate without an END line")
    body = data[begin + 27:end]
    return binascii.a2b_base64(body.replace(b"\r", b"").replace(b"\n", b""))


class TlsWrapper:
    def __init__(self, ca_path, server_name):
        self.ca_path = ca_path
        self.server_name = server_name

    def context(self):
        ctx = _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = _ssl.CERT_REQUIRED
        # Read at every connect (not kept): a few KB of heap only while a connection is made.
        ctx.load_verify_locations(cadata=ca_der(self.ca_path))
        return ctx

    def wrap_socket(self, sock, server_hostname=None, **ignored):
        # Our configured name wins over what umqtt passes: umqtt passes its `server`, which may be an
        # address the certificate does not name.
        name = self.server_name or server_hostname
        raw = getattr(sock, "raw", None)
        if raw is None:          # a plain socket (not through the guard)
            return self.context().wrap_socket(sock, server_hostname=name)
        sock.wrap(self.context().wrap_socket(raw, server_hostname=name))
        return sock


class _UsslModule:
    """What umqtt.simple 1.3.4 gets for `import ussl`."""

    def __init__(self, wrapper):
        self.wrapper = wrapper

    def wrap_socket(self, sock, **params):
        return self.wrapper.wrap_socket(sock, **params)


def make_client(simple, client_id, m, user, pswd):
    """An MQTTClient of whichever umqtt.simple is installed, set up for TLS by the mqtt config m."""
    w = TlsWrapper(m["ca"], m["server_name"] or m["host"])
    try:
        c = simple.MQTTClient(client_id, m["host"], m["port"], user, pswd, m["keepalive"],
                              ssl=w, ssl_params={"server_hostname": w.server_name})
    except TypeError:
        # 1.8: no ssl_params; it calls w.wrap_socket(sock, server_hostname=...) itself
        return simple.MQTTClient(client_id, m["host"], m["port"], user, pswd, m["keepalive"], ssl=w)
    sys.modules["ussl"] = _UsslModule(w)
    return c
