# Night mode (pure): a local-time schedule that dims the LED and softens non-urgent sounds.
# Local time comes in as minutes since local midnight, or None while wall time is unknown
# (then it is never night: the box stays at full strength rather than guess).
from firmware.core import alarm_config

# Only these ever soften. urgent_low, urgent_low_soon and the silence patterns (sensor_silent,
# sensor_and_cloud_silent, ...) are not listed, so they always sound at full strength.
SOFTENABLE = ("low", "high", "urgent_high", "falling_fast", "rising_fast")


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
    if night and sound == "on" and name in SOFTENABLE:
        return "soft"
    return sound
