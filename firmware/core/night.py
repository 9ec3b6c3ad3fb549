# Night mode (pure): a local-time schedule that dims the LED and softens non-urgent sounds. Everything
# night mode does lives here: the schedule, which patterns it never touches, the sound it plays and the
# colour it shows; the engine says whether it is night, the player only applies what this returns.
# Local time comes in as minutes since local midnight, or None while wall time is unknown
# (then it is never night: the box stays at full strength rather than guess).
from firmware.core import alarm_config

# Night never softens these, neither their sound nor their light: an urgent low (or one on its way), a
# silence the family must notice, a fault, the self-test a parent runs to check the box. Every other
# alarm level (low, high, urgent_high, falling_fast, rising_fast) sounds soft, and every other pattern
# (ok, booting) glows dimmed.
NEVER_SOFTENED = ("urgent_low", "urgent_low_soon", "sensor_silent", "sensor_and_cloud_silent",
                  "cloud_silent", "fault", "selftest")


class Night:
    def __init__(self, night_cfg=None):
        c = alarm_config.effective("night", night_cfg)
        self.enabled = c["enabled"]
        self.start = alarm_config.parse_hhmm(c["start"])
        self.end = alarm_config.parse_hhmm(c["end"])
        self.led_percent = c["led_percent"]

    def active(self, local_minute):
        """True when the schedule says night at local_minute (the span may cross midnight)."""
        if not self.enabled or local_minute is None or self.start is None or self.end is None:
            return False
        m = local_minute % 1440
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= m < self.end
        return m >= self.start or m < self.end

    def led_percent_at(self, local_minute):
        return self.led_percent if self.active(local_minute) else 100


def soften(name, sound, night):
    """The sound to play for pattern/level `name`: "on" becomes "soft" at night for non-urgent
    levels. "escalated" is never softened: it exists to wake someone."""
    if night and sound == "on" and name not in NEVER_SOFTENED:
        return "soft"
    return sound


def dim(rgb, name, percent):
    """The colour night mode shows for pattern `name` at LED `percent` (100 by day): scaled, except for
    the patterns night never softens."""
    if rgb is None or percent >= 100 or name in NEVER_SOFTENED:
        return rgb
    # at least 1 per lit channel: a dimmed never-dark phase must not go dark
    return tuple(max(1, c * percent // 100) if c else 0 for c in rgb)
