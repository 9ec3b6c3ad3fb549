# Remote commands from <prefix>/cmd/<name>: verified by firmware.core.commands (HMAC, counter,
# freshness), the counter persisted before the command acts, carried out by the gateway core, and every
# one audited on <prefix>/audit. A refused command is a `reject` event and changes nothing.
#
# Replay: the verifier refuses a counter not above the last accepted one. That number is written to the
# data dir (a small file, rewritten only when a command is accepted: no flash wear otherwise) before the
# command acts, so neither a reboot nor a power cut in between lets a recorded command play again. When
# the file cannot be written the command is refused: better a snooze that does not work from a phone
# than a snooze anyone who recorded it can repeat.
import json
import os

from firmware.core import commands

_FILE = "/cmd_counter.json"


def _read_counter(path):
    try:
        with open(path) as f:
            n = json.load(f)["n"]
        return n if type(n) is int and n >= 0 else 0
    except Exception:
        return 0  # never accepted a command (or the file is unreadable: only older ones could pass)


class CommandHandler:
    def __init__(self, cfg, data_dir, clock):
        self.path = data_dir + _FILE
        self.clock = clock
        c = cfg["commands"]
        self.verifier = commands.CommandVerifier(commands.secret_from_hex(c["secret"]),
                                                 _read_counter(self.path), c["max_age_s"])

    def _persist(self, n):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps({"n": n}))
        os.rename(tmp, self.path)

    def handle(self, gw, now_ms, name, payload):
        """Returns the audit record (a dict) to publish on <prefix>/audit."""
        wall = self.clock.wall_ms()
        before = self.verifier.last_counter
        cmd, reason = self.verifier.verify(name, payload, None if wall is None else wall // 1000)
        if cmd is not None:
            try:
                self._persist(cmd["n"])
            except Exception:
                self.verifier.last_counter = before
                cmd, reason = None, "persist_failed"
        if cmd is None:
            gw.on_reject(now_ms, "command_" + reason)
            rec = commands.audit_record(name, False, reason, "mqtt")
            rec["reason"] = reason if reason in commands.REASONS or reason == "persist_failed" else "malformed"
            return rec
        rec = commands.audit_record(name, True, None, "mqtt")
        rec["n"] = cmd["n"]
        rec["outcome"] = gw.on_command(now_ms, cmd)
        return rec
