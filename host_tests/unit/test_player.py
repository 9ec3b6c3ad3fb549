# The pattern player on a virtual clock: what the LED and buzzer actually do over time.
import asyncio

from firmware.core.patterns import TABLE
from firmware.shell import player as player_mod


class Rec:
    def __init__(self, can_dim=None):
        self.t = 0
        self.led = []   # (t, rgb)
        self.tones = []  # (t, hz)
        if can_dim is not None:
            self.can_dim = can_dim

    def show(self, rgb):
        self.led.append((self.t, rgb))

    def tone(self, hz):
        self.tones.append((self.t, hz))


class Board:
    def __init__(self, can_dim=None):
        self.rec = Rec(can_dim)
        self.led = self.rec
        self.buzzer = self.rec


def _drive(p, rec, plan, until_ms):
    """Run the player on virtual time; plan = {t_ms: (name, mode)} pattern changes."""
    plan = dict(plan)

    async def fake_wait(clock, event, ms):
        target = rec.t + ms
        while rec.t < target:
            due = [t for t in plan if t <= rec.t + 1]
            if due:
                for t in sorted(due):
                    p.set(*plan.pop(t))
                if event.is_set():
                    return True
            nxt = min([t for t in plan] + [target, until_ms])
            rec.t = max(nxt, rec.t + 1) if nxt <= rec.t else nxt
            if rec.t >= until_ms:
                raise _Done()
            await asyncio.sleep(0)
        return False

    player_mod.wait_event = fake_wait
    try:
        asyncio.run(p.run())
    except _Done:
        pass
    finally:
        player_mod.wait_event = WAIT


class _Done(Exception):
    pass


WAIT = player_mod.wait_event


def _lit(rgb):
    return rgb is not None and max(rgb) > 0


def test_ok_heartbeat_never_goes_dark_and_stays_silent():
    b = Board()
    p = player_mod.Player(b, None)
    p.set("ok", "off")
    _drive(p, b.rec, {}, 30000)
    shows = b.rec.led
    assert len(shows) >= 20 and all(_lit(rgb) for _, rgb in shows), shows[:6]
    assert [t for t, _ in shows[:4]] == [0, 2800, 3000, 5800]
    assert all(hz == 0 for _, hz in b.rec.tones)


def test_urgent_low_beeps_and_a_change_cuts_the_rhythm_short():
    b = Board()
    p = player_mod.Player(b, None)
    p.set("urgent_low", "on")
    _drive(p, b.rec, {1000: ("ok", "off")}, 4000)
    hz = TABLE["urgent_low"][3]
    beeps = [t for t, f in b.rec.tones if f == hz]
    assert beeps == [0, 300, 600], b.rec.tones
    # at 1000 ms the player switches at once: buzzer off, the ok colour
    after = [(t, f) for t, f in b.rec.tones if t >= 1000]
    assert after and after[0] == (1000, 0) and all(f == 0 for _, f in after)
    assert (1000, TABLE["ok"][0]) in b.rec.led


def test_escalated_is_higher_and_faster():
    b = Board()
    p = player_mod.Player(b, None)
    p.set("low", "escalated")
    _drive(p, b.rec, {}, 5000)
    on = [(t, f) for t, f in b.rec.tones if f]
    assert on[0] == (0, TABLE["low"][3] + 600)
    assert [t for t, _ in on[:3]] == [0, 1700, 3400]  # 400 on + 1300 off (half of 2600)


def test_a_switched_led_goes_dark_in_the_off_phase():
    b = Board(can_dim=False)
    p = player_mod.Player(b, None)
    p.set("cloud_silent", "off")
    _drive(p, b.rec, {}, 8000)
    assert [rgb for _, rgb in b.rec.led[:3]] == [TABLE["cloud_silent"][0], None, TABLE["cloud_silent"][0]]


def test_each_step_checks_in_and_a_crash_silences_the_buzzer():
    b = Board()
    seen = []

    def on_step(name):
        seen.append((b.rec.t, name))
        if b.rec.t >= 250:
            raise RuntimeError("boom")

    p = player_mod.Player(b, None, on_step)
    p.set("urgent_low", "on")
    try:
        _drive(p, b.rec, {}, 5000)
        raised = False
    except RuntimeError:
        raised = True
    assert raised
    assert seen and all(n == "player" for _, n in seen)
    assert b.rec.tones[-1][1] == 0  # the finally turned the piezo off


def test_night_dims_the_heartbeat_but_never_an_urgent_low_or_silence():
    from firmware.core.night import dim as night_dim
    assert night_dim((0, 160, 0), "ok", 10) == (0, 16, 0)
    assert night_dim((0, 5, 0), "ok", 10) == (0, 1, 0)          # dimmed, never dark
    assert night_dim((255, 60, 0), "low", 10) == (25, 6, 0)
    assert night_dim((255, 0, 0), "urgent_low", 10) == (255, 0, 0)
    assert night_dim((150, 0, 255), "sensor_silent", 10) == (150, 0, 255)
    assert night_dim(None, "ok", 10) is None
    assert night_dim((0, 160, 0), "ok", 100) == (0, 160, 0)
