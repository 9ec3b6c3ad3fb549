# Pattern arbiter and pattern table (pure).
# One pattern at a time, by priority: glucose alarms, then sensor_and_cloud_silent, sensor_silent,
# cloud_silent, fault, then ok. Each pattern is distinct three ways: RGB colour + rhythm, plain-LED rhythm
# alone, buzzer rhythm. Rhythms are (on_ms, off_ms, on_ms, off_ms, ...) and repeat.

# name: (rgb, led rhythm, buzzer rhythm, buzzer Hz, never_dark)
# never_dark: the off-phase of the rhythm shows the colour dimmed instead of dark, so a working box is
# never mistaken for a box without power.
TABLE = {
    "ok": ((0, 160, 0), (2800, 200), (), 0, True),
    "urgent_low": ((255, 0, 0), (100, 100), (200, 100, 200, 100, 200, 1000), 3200, True),
    "low": ((255, 60, 0), (500, 500), (400, 2600), 2700, True),
    "urgent_low_soon": ((255, 0, 140), (100, 100, 100, 700), (150, 100, 150, 2600), 3000, True),
    "high": ((255, 200, 0), (1000, 1000), (200, 4800), 2200, True),
    "urgent_high": ((255, 200, 0), (250, 250), (300, 200, 300, 2200), 2500, True),
    "falling_fast": ((0, 80, 255), (100, 100, 100, 100, 100, 1400), (100, 100, 100, 2700), 2600, True),
    "rising_fast": ((0, 200, 200), (100, 1900), (100, 4900), 2000, True),
    "sensor_silent": ((150, 0, 255), (1000, 300, 200, 300), (600, 600, 600, 3000), 2000, True),
    "cloud_silent": ((0, 0, 255), (1500, 1500), (), 0, True),
    "sensor_and_cloud_silent": ((150, 0, 255), (1000, 300, 200, 300, 200, 300),
                                (600, 600, 600, 600, 600, 3000), 2000, True),
    "fault": ((255, 255, 255), (600, 200, 600, 200, 600, 1800), (300, 29700), 1800, True),
    "selftest": ((255, 255, 255), (50, 50), (150, 2850), 2500, False),
    "booting": ((255, 255, 255), (200, 200), (), 0, False),
}

ALARM_PATTERNS = ("urgent_low", "urgent_low_soon", "low", "urgent_high", "high",
                  "falling_fast", "rising_fast")


def choose(alarm_level, alarm_sound, sensor_up, cloud_up, faults=None, silent_sound="on",
           cloud_sound="off"):
    """Return (pattern name, sound mode) with sound mode one of "off", "soft", "on", "escalated".

    silent_sound: how loudly sensor silence sounds (at least as loud as a glucose alarm it replaced).
    cloud_sound: "off" by default (the bedside alarm still works), "soft" to chirp gently.
    """
    if alarm_level is not None:
        return alarm_level, alarm_sound
    if not sensor_up and not cloud_up:
        return "sensor_and_cloud_silent", silent_sound
    if not sensor_up:
        return "sensor_silent", silent_sound  # the family is blind: it sounds
    if not cloud_up:
        return "cloud_silent", cloud_sound
    if faults:
        return "fault", "soft"
    return "ok", "off"
