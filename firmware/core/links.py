# Link watch (pure): judges the sensor, wifi and cloud links from ticks passed in, wrap-safe.
#
#   sensor  silent when no valid reading for silence.sensor_after_s (660 s by default: two missed
#           5-minute readings plus a minute, so one lost packet never alarms)
#   wifi    down at once when the board says it is disconnected
#   cloud   silent when no acknowledged MQTT round trip (CONNACK, PUBACK, PINGRESP: any bytes from
#           the broker) for silence.cloud_after_s (60 s) while the gateway wants to be connected
#
# Times are ticks_ms values compared only through ticks.diff, which is right for ages below 2**29 ms
# (6.2 days). A link that stayed silent longer would see its age wrap negative and look fresh again,
# so a silent link is latched: only a new sign of life (a different tick value) brings it back.
from firmware.core import ticks


class _Watch:
    """One link judged by the age of its last sign of life."""

    def __init__(self, after_ms, now_ms):
        self.after_ms = after_ms
        # Boot counts as the last sign of life: a fresh gateway gets the same grace as a running one.
        self.last = now_ms
        self.fresh = True  # False once judged silent, until a new sign of life arrives

    def saw(self, at_ms):
        # The same tick value again is the same old sign (the uplink reports its last rx every
        # second), not news: it must not revive a latched link.
        if at_ms != self.last:
            self.last = at_ms
            self.fresh = True

    def restart(self, now_ms):
        self.last = now_ms
        self.fresh = True

    def judge(self, now_ms):
        age = ticks.diff(now_ms, self.last)
        up = self.fresh and 0 <= age < self.after_ms
        if not up:
            self.fresh = False
        return up


class LinkWatch:
    def __init__(self, silence_cfg, now_ms, want_cloud=True):
        self.sensor_after_ms = silence_cfg["sensor_after_s"] * 1000
        self.cloud_after_ms = silence_cfg["cloud_after_s"] * 1000
        self._sensor = _Watch(self.sensor_after_ms, now_ms)
        self._cloud = _Watch(self.cloud_after_ms, now_ms)
        self.wifi_up = True
        self.want_cloud = want_cloud
        self.up = {"sensor": True, "cloud": True, "wifi": True}

    def saw_sensor(self, now_ms):
        """A valid live reading arrived."""
        self._sensor.saw(now_ms)

    def cloud_ok(self, at_ms):
        """An acknowledged round trip happened at at_ms (may be earlier than now)."""
        self._cloud.saw(at_ms)

    def set_wifi(self, up, now_ms):
        self.wifi_up = bool(up)

    def set_want_cloud(self, want, now_ms):
        """While the gateway does not want the cloud (none configured, stopping), the cloud is not
        judged; when it starts wanting it again it gets the full grace from now."""
        if want and not self.want_cloud:
            self._cloud.restart(now_ms)
        self.want_cloud = bool(want)

    def tick(self, now_ms):
        """Re-judge every link; returns [(name, up)] for the links that changed."""
        judged = {
            "sensor": self._sensor.judge(now_ms),
            "wifi": self.wifi_up,
            "cloud": self._cloud.judge(now_ms) if self.want_cloud else True,
        }
        changes = []
        for name in ("sensor", "wifi", "cloud"):
            if judged[name] != self.up[name]:
                self.up[name] = judged[name]
                changes.append((name, judged[name]))
        return changes
