# Remote snooze through the gateway core: a verified cmd/snooze with "minutes" snoozes for that long,
# without it for the level's own time, and never quiets urgent low. Time is passed in.
from firmware.core import commands, config, ticks
from firmware.core.commands import CommandVerifier
from firmware.core.gateway import Gateway
from firmware.core.reading import Reading

MIN = 60000
SECRET = b"0123456789abcdef"


class Box:
    def __init__(self):
        self.t = ticks.PERIOD - 20 * MIN   # crosses the ticks wrap on the way
        self.gw = Gateway(config.build({"sensor": {"allow_plain": True}}), self.t)
        self.v = CommandVerifier(SECRET)
        self.seq = 0
        self.n = 0

    def read(self, *values):
        for v in values:
            self.seq += 1
            self.gw.on_reading(self.t, Reading(1, self.seq, v))
            self.wait(5)

    def wait(self, minutes):
        for _ in range(int(minutes * 2)):
            self.t = ticks.add(self.t, 30000)
            self.gw.tick(self.t)

    def snooze(self, **args):
        self.n += 1
        cmd, why = self.v.verify("snooze", commands.sign(SECRET, "snooze", self.n, 0, args), 0)
        if cmd is None:
            return "refused: " + why
        return self.gw.on_command(self.t, cmd)

    def alarm_events(self):
        return [e[1] for e in self.gw.drain() if e[0] == "event" and e[1]["event"] == "alarm"]

    def sound(self):
        return self.gw.alarms.state()


def test_remote_snooze_with_minutes_quiets_a_high_for_that_long_then_it_sounds_again():
    b = Box()
    b.read(262, 266, 270)
    assert b.sound() == ("high", "escalated")   # 5 min unacknowledged
    assert b.snooze(minutes=20) == "snoozed: quiet for 20 min (remote)"
    b.alarm_events()
    b.read(268, 266, 270)                    # 15 min: quiet
    assert b.sound() == ("high", "off")
    b.read(268)                              # 20 min: the snooze is over, still high
    assert b.sound() == ("high", "on")
    assert [e["state"] for e in b.alarm_events()] == ["raised"]


def test_remote_snooze_without_minutes_uses_the_level_time_60_min_for_a_high():
    b = Box()
    b.read(262, 266)
    assert b.snooze() == "snoozed: quiet for 60 min (remote)"


def test_out_of_range_minutes_is_refused_and_changes_nothing():
    b = Box()
    b.read(262, 266)
    b.alarm_events()
    assert b.snooze(minutes=600) == "refused: bad_args"
    assert b.snooze(minutes=2) == "refused: bad_args"
    assert b.sound() == ("high", "escalated")
    assert b.alarm_events() == []


def test_remote_snooze_with_minutes_never_quiets_urgent_low():
    b = Box()
    b.read(70, 60, 52)
    assert b.sound()[0] == "urgent_low"
    out = b.snooze(minutes=120)
    assert out.startswith("refused") and "remotely" in out
    assert b.sound() == ("urgent_low", "escalated")


def test_a_long_remote_low_snooze_is_still_broken_by_urgent_low():
    b = Box()
    b.read(74, 72, 69, 68)
    assert b.snooze(minutes=90).startswith("snoozed")
    assert b.sound() == ("low", "off")
    b.read(62, 53)
    assert b.sound() == ("urgent_low", "escalated")
