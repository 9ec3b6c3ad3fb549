# Remote commands from <prefix>/cmd/<name>: verified by firmware.core.commands (HMAC, counter,
# freshness), the counter persisted before the command acts, carried out by the gateway core, and every
# one audited on <prefix>/audit. A refused command is a `reject` event and changes nothing.
#
# Replay: the verifier refuses a counter not above the last accepted one. That number is written to the
# data dir (a small file, rewritten only when a command is accepted: no flash wear otherwise) before the
# command acts, so neither a reboot nor a power cut in between lets a recorded command play again. When
# the file cannot be written the command is refused: better a snooze that does not work from a phone
# than a snooze anyone who recorded it can repeat.
#
# Fail closed: a counter file that exists but cannot be read or holds no valid counter refuses every
# command ("no_counter" in the audit, a `commands` fault naming the file) until it is valid again: a
# fallback to 0 would accept every recorded command still inside its freshness window. It is read
# again on each command (at most one every 2 s: the uplink's rate limit), so a fixed or removed file
# ends the refusal without a reboot. A missing file is the valid "never accepted one" state: a family
# may remove a broken file (mpremote), which reopens at most the max_age_s freshness window, since
# commands are refused until the gateway has wall time.
import json

from firmware.core import commands
from firmware.shell.files import write_atomic

_FILE = "/cmd_counter.json"
_ENOENT = 2
_DETAIL = {
    "no_time": "the gateway has no wall time yet (NTP), so it cannot tell a fresh command from a recorded one",
    "ahead": "the counter is further ahead of the gateway's clock than max_age_s (a sender's clock is wrong)",
}


def _read_counter(path):
    """(n, None), or (None, why) when the file exists but cannot be trusted."""
    try:
        f = open(path)
    except OSError as e:
        if e.args and e.args[0] == _ENOENT:
            return 0, None  # never accepted a command
        return None, "%s unreadable (%r): commands refused" % (path, e)
    try:
        with f:
            n = json.load(f)["n"]
    except Exception as e:
        return None, "%s corrupt (%r): commands refused" % (path, e)
    if type(n) is not int or not 0 <= n < (1 << 53):
        return None, "%s holds no valid counter: commands refused" % path
    return n, None


class CommandHandler:
    def __init__(self, cfg, data_dir, clock):
        self.path = data_dir + _FILE
        self.clock = clock
        c = cfg["commands"]
        n, self.error = _read_counter(self.path)  # the app shows error as the `commands` fault
        self.verifier = commands.CommandVerifier(commands.secret_from_hex(c["secret"]),
                                                 n or 0, c["max_age_s"])

    def _persist(self, n):
        write_atomic(self.path, json.dumps({"n": n}))

    def handle(self, gw, now_ms, name, payload):
        """Returns the audit record (a dict) to publish on <prefix>/audit."""
        if self.error is not None:
            n, err = _read_counter(self.path)  # fixed or removed meanwhile?
            if err is None:
                self.verifier.last_counter = n
            self.error = err
            gw.set_fault(now_ms, "commands", err)
        wall = self.clock.wall_ms()
        before = self.verifier.last_counter
        if self.error is not None:
            cmd, reason = None, "no_counter"
        else:
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
            if reason == "no_counter":
                rec["detail"] = self.error
            elif reason in _DETAIL:
                rec["detail"] = _DETAIL[reason]
            return rec
        rec = commands.audit_record(name, True, None, "mqtt")
        rec["n"] = cmd["n"]
        rec["outcome"] = gw.on_command(now_ms, cmd)
        return rec
