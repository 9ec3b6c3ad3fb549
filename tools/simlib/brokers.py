# Brokers for the simulator: mosquitto when it is installed, else amqtt embedded; always on loopback.
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout_s=10.0, proc=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def find_mosquitto():
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None)


class Broker:
    """A broker process on 127.0.0.1:port, stopped by stop()."""

    def __init__(self, kind, port, proc, workdir):
        self.kind, self.host, self.port, self.proc, self.workdir = kind, "127.0.0.1", port, proc, workdir

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.workdir:  # the broker's config folder: no run leaves one behind in the temp dir
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def _run_as():
    """The `user` line: mosquitto started as root drops to user `mosquitto`, which cannot write a
    persistence folder a test (root) made, so a broker asked to persist silently did not (issue 17).
    Naming the user we run as keeps it; for anyone else mosquitto ignores the line."""
    try:
        import pwd
        return "user %s\n" % pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return ""


def start_mosquitto(exe=None, port=None, extra_conf="", persist_dir=None, allow_anonymous=True):
    """mosquitto on 127.0.0.1:port. With persist_dir it keeps sessions there (saved every second), so a
    follower's persistent session survives a kill -9 and a restart on the same port."""
    exe = exe or find_mosquitto()
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="nightstand-mosq-")
    conf = os.path.join(workdir, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous %s\n" % (port, "true" if allow_anonymous else "false"))
        f.write(_run_as())
        if persist_dir:
            f.write("persistence true\npersistence_location %s/\nautosave_interval 1\n" % persist_dir)
        else:
            f.write("persistence false\n")
        f.write(extra_conf)
    proc = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not wait_port("127.0.0.1", port, 10, proc):
        err = proc.stderr.read().decode(errors="replace").strip().splitlines() if proc.poll() is not None else []
        proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError("mosquitto did not start on 127.0.0.1:%d %s" % (port, err[-1:] or ""))
    return Broker("mosquitto", port, proc, workdir)


_AMQTT_RUNNER = r"""
import asyncio, sys
from amqtt.broker import Broker
async def main(port):
    cfg = {"listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:%d" % port}},
           "sys_interval": 0, "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
           "topic-check": {"enabled": False}}
    b = Broker(cfg)
    await b.start()
    while True:
        await asyncio.sleep(3600)
asyncio.run(main(int(sys.argv[1])))
"""


def start_amqtt(port=None):
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-c", _AMQTT_RUNNER, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not wait_port("127.0.0.1", port, 20, proc):
        err = proc.stderr.read().decode(errors="replace").strip().splitlines() if proc.poll() is not None else []
        proc.kill()
        raise RuntimeError("amqtt did not start on 127.0.0.1:%d %s" % (port, err[-1:] or ""))
    return Broker("amqtt", port, proc, None)


def start_default():
    if find_mosquitto():
        return start_mosquitto()
    return start_amqtt()
