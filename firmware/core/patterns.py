# Pattern arbiter (pure): the one pattern the box shows, from the documented priority.
# Glucose alarms outrank silence; sensor_silent outranks cloud_silent; ok is never dark.

ALARM_PATTERNS = ("urgent_low", "urgent_low_soon", "low", "urgent_high", "high",
                  "falling_fast", "rising_fast")


def choose(alarm_level, alarm_sound, sensor_up, cloud_up, fault=None):
    """Return (pattern name, buzzer sounds?)."""
    if alarm_level is not None:
        return alarm_level, alarm_sound != "off"
    if not sensor_up and not cloud_up:
        return "sensor_and_cloud_silent", True
    if not sensor_up:
        return "sensor_silent", True      # the family is blind: it sounds
    if not cloud_up:
        return "cloud_silent", False      # the bedside alarm still works: shown, not sounded
    if fault:
        return "fault", False
    return "ok", False
