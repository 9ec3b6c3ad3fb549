# The shell's command handler (firmware/shell/commands_task.py) fails closed: a counter file it cannot
# trust refuses every command and names the file in a `commands` fault; no wall time refuses commands
# with the reason in the audit record. Runs under pytest and MicroPython.
import binascii
import os

from firmware.core import commands, config
from firmware.core.gateway import Gateway
from firmware.shell.commands_task import CommandHandler
from host_tests.portable.scratch import fresh

_DIR = "build/test_commands_task"
SECRET_HEX = "8f3c1e22a4b5c6d7e8f90a1b2c3d4e5f00112233445566778899aabbccddeeff"
SECRET = binascii.unhexlify(SECRET_HEX)
NOW = 1718000000


class Clock:
    def __init__(self, wall_s=NOW):
        self.wall_s = wall_s

    def wall_ms(self):
        return None if self.wall_s is None else self.wall_s * 1000


def _setup(name, content=None, wall_s=NOW):
    folder = _DIR + "_" + name
    path = fresh(folder, "cmd_counter.json")
    if content is not None:
        with open(path, "w") as f:
            f.write(content)
    cfg = config.build({"gateway_id": "kid", "sensor": {"allow_plain": True},
                        "commands": {"secret": SECRET_HEX}})
    gw = Gateway(cfg, 0)
    return CommandHandler(cfg, folder, Clock(wall_s)), gw, path


def _faults(gw):
    return [e[1] for e in gw.drain() if e[0] == "event" and e[1]["event"] == "fault"]


def _snooze(h, gw, n, ts=NOW):
    return h.handle(gw, 1000, "snooze", commands.sign(SECRET, "snooze", n, ts))


def test_a_corrupt_counter_file_refuses_every_command_and_names_the_file_until_it_is_valid():
    for content in ('{"n": 12', "", '{"n": -1}', '{"n": "5"}', "[1]", '{"n": 1e300}'):
        h, gw, path = _setup("corrupt", content)
        assert h.error is not None and path in h.error, (content, h.error)
        rec = _snooze(h, gw, NOW * 1000)
        assert rec["accepted"] is False and rec["reason"] == "no_counter", (content, rec)
        assert path in rec["detail"]
        f = _faults(gw)
        assert f and f[-1]["name"] == "commands" and f[-1]["active"] and path in f[-1]["why"], f
        with open(path) as fh:
            assert fh.read() == content          # nothing was written over the evidence
    # the family fixes the file (or removes it): the next command is judged normally, fault cleared
    with open(path, "w") as fh:
        fh.write('{"n": %d}' % (NOW * 1000 - 5))
    rec = _snooze(h, gw, NOW * 1000)
    assert rec["accepted"] is True, rec
    f = _faults(gw)
    assert f and f[-1]["name"] == "commands" and not f[-1]["active"], f


def test_an_unreadable_counter_path_refuses_commands():
    h, gw, path = _setup("folder")
    os.mkdir(path)                               # a folder where the file should be: open() fails
    try:
        h2 = CommandHandler(config.build({"gateway_id": "kid", "sensor": {"allow_plain": True},
                                          "commands": {"secret": SECRET_HEX}}),
                            _DIR + "_folder", Clock())
        assert h2.error is not None and path in h2.error
        assert _snooze(h2, gw, NOW * 1000)["reason"] == "no_counter"
    finally:
        os.rmdir(path)


def test_no_counter_file_is_a_fresh_gateway_and_commands_pass():
    h, gw, path = _setup("missing")
    assert h.error is None
    assert _snooze(h, gw, NOW * 1000)["accepted"] is True
    with open(path) as f:
        assert str(NOW * 1000) in f.read()       # persisted before it acted


def test_without_wall_time_commands_are_refused_and_the_audit_says_why():
    h, gw, path = _setup("notime", wall_s=None)
    rec = _snooze(h, gw, NOW * 1000)
    assert rec["accepted"] is False and rec["reason"] == "no_time"
    assert "wall time" in rec["detail"]
    h.clock.wall_s = NOW                         # NTP answered: the same command now passes
    assert _snooze(h, gw, NOW * 1000)["accepted"] is True


def test_a_counter_far_ahead_is_refused_and_later_good_commands_are_accepted():
    h, gw, path = _setup("ahead", '{"n": 5}')
    rec = _snooze(h, gw, 2 ** 53 - 1)
    assert rec["accepted"] is False and rec["reason"] == "ahead" and "clock" in rec["detail"]
    with open(path) as f:
        assert f.read() == '{"n": 5}'            # the counter did not move
    assert _snooze(h, gw, NOW * 1000)["accepted"] is True
    assert _snooze(h, gw, NOW * 1000 + 1000, NOW + 1)["accepted"] is True
