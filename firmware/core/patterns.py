# Pattern arbiter and pattern table (pure).
# One pattern at a time, by priority: glucose alarms, then sensor_and_cloud_silent, sensor_silent,
# cloud_silent, fault, then ok. Each pattern is distinct three ways: RGB colour + rhythm, plain-LED rhythm
# alone, buzzer rhythm (host_tests/portable/test_patterns.py proves it, with a tolerance: two rhythms
# whose every phase is within 1.5x of the other's count as the same, since a woken parent cannot tell
# them apart from memory). Rhythms are (on_ms, off_ms, on_ms, off_ms, ...) and repeat.
# docs/family-guide.md is the same table in words; change both together.

# name: (rgb, led rhythm, buzzer rhythm, buzzer Hz, never_dark)
# never_dark: the off-phase of the rhythm shows the colour dimmed instead of dark, so a working box is
# never mistaken for a box without power.
TABLE = {
    # steady glow with a short dip every 3 s: the heartbeat of a box that works
    "ok": ((0, 160, 0), (2800, 200), (), 0, True),
    # the most urgent: fast flicker and three beeps every 1.8 s
    "urgent_low": ((255, 0, 0), (100, 100), (200, 100, 200, 100, 200, 1000), 3200, True),
    "low": ((255, 60, 0), (500, 500), (400, 2600), 2700, True),
    "urgent_low_soon": ((255, 0, 140), (100, 100, 100, 700), (150, 100, 150, 2600), 3000, True),
    "high": ((255, 200, 0), (1000, 1000), (800, 4200), 2200, True),
    "urgent_high": ((255, 200, 0), (250, 250), (300, 200, 300, 2200), 2500, True),
    # triple flash and triple chirp; rising_fast a single flash and a single chirp
    "falling_fast": ((0, 80, 255), (100, 100, 100, 100, 100, 1400),
                     (80, 120, 80, 120, 80, 2520), 2600, True),
    "rising_fast": ((0, 200, 200), (100, 1900), (100, 4900), 2000, True),
    # long-short flash; two long beeps (the family is blind: it sounds like an alarm)
    "sensor_silent": ((150, 0, 255), (1000, 300, 200, 300), (600, 600, 600, 3000), 2000, True),
    # slow even blink; the buzzer only chirps (60 ms a minute) when silence.cloud_chirp is set
    "cloud_silent": ((0, 0, 255), (2000, 2000), (120, 60000), 2000, True),
    "sensor_and_cloud_silent": ((150, 0, 255), (1000, 300, 200, 300, 200, 300),
                                (600, 600, 600, 600, 600, 3000), 2000, True),
    # three flashes then a pause; one soft beep every 30 s
    "fault": ((255, 255, 255), (600, 200, 600, 200, 600, 1800), (300, 29700), 1800, True),
    # the sweep: red, green, blue, white, a quarter second each with a short dark gap, so a family
    # sees every channel of the LED work; one chirp so they hear the buzzer
    "selftest": ((255, 255, 255), (250, 50), (150, 2850), 2500, False),
    "booting": ((255, 255, 255), (200, 200), (), 0, False),
}

ALARM_PATTERNS = ("urgent_low", "urgent_low_soon", "low", "urgent_high", "high",
                  "falling_fast", "rising_fast")

# Self-test sweep: red, green, blue, white, two LED steps each, so a family sees every channel work.
SWEEP = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255))

# The gateway reads silence.cloud_chirp (validated in config.py, which a running gateway no longer keeps):
# false (default) = cloud_silent is shown only; true = it also chirps gently (60 ms once a minute).


def dim(rgb):
    """The never-dark off-phase: the colour at 1/8, still lit on every driver."""
    return (rgb[0] >> 3, rgb[1] >> 3, rgb[2] >> 3)


def led_phase(name, i, can_dim=True):
    """What the LED shows in phase i of a pattern's LED rhythm: an (r, g, b) or None for dark.
    can_dim=False (a plain LED switched on/off, no PWM): dimmed phases go dark, since a dimmed colour
    would light such an LED fully and the rhythm would vanish into a steady light."""
    rgb, _led, _buzz, _hz, never_dark = TABLE[name]
    if name == "selftest":
        rgb = SWEEP[(i // 2) % len(SWEEP)]
    if i % 2 == 0:
        return rgb
    return dim(rgb) if never_dark and can_dim else None


def buzz_rhythm(name, mode):
    """The buzzer rhythm of a pattern in a sound mode: () = silent; escalated halves the pauses,
    soft halves the tones (never shorter than 50 ms: a piezo needs that to be heard)."""
    buzz = TABLE[name][2]
    if mode == "off" or not buzz:
        return ()
    if mode == "escalated":
        return tuple(d if i % 2 == 0 else max(50, d // 2) for i, d in enumerate(buzz))
    if mode == "soft":
        return tuple(max(50, d // 2) if i % 2 == 0 else d for i, d in enumerate(buzz))
    return buzz


def choose(alarm_level, alarm_sound, sensor_up, cloud_up, faults=None, silent_sound="on",
           cloud_sound="off"):
    """Return (pattern name, sound mode) with sound mode one of "off", "soft", "on", "escalated".

    silent_sound: how loudly sensor silence sounds (at least as loud as a glucose alarm it replaced).
    cloud_sound: "off" by default (the bedside alarm still works), "soft" to chirp gently; anything
    louder is turned down to "soft".
    """
    if alarm_level is not None:
        return alarm_level, alarm_sound
    if not sensor_up and not cloud_up:
        return "sensor_and_cloud_silent", silent_sound
    if not sensor_up:
        return "sensor_silent", silent_sound  # the family is blind: it sounds
    if not cloud_up:
        return "cloud_silent", "off" if cloud_sound == "off" else "soft"
    if faults:
        return "fault", "soft"
    return "ok", "off"
