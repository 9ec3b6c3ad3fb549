# Link watch (pure): judges sensor, wifi and cloud links from ticks passed in, wrap-safe.
from firmware.core import ticks


class LinkWatch:
    def __init__(self, silence_cfg, now_ms):
        self.sensor_after_ms = silence_cfg["sensor_after_s"] * 1000
        self.cloud_after_ms = silence_cfg["cloud_after_s"] * 1000
        # Boot counts as the last sign of life: a fresh gateway gets the same grace as a running one.
        self.last_sensor = now_ms
        self.last_cloud = now_ms
        self.wifi_up = True
        self.up = {"sensor": True, "cloud": True, "wifi": True}

    def saw_sensor(self, now_ms):
        self.last_sensor = now_ms

    def cloud_ok(self, now_ms):
        self.last_cloud = now_ms

    def set_wifi(self, up, now_ms):
        self.wifi_up = up

    def tick(self, now_ms):
        """Re-judge every link; returns [(name, up)] for the links that changed."""
        judged = {
            "sensor": ticks.diff(now_ms, self.last_sensor) < self.sensor_after_ms,
            "cloud": ticks.diff(now_ms, self.last_cloud) < self.cloud_after_ms,
            "wifi": self.wifi_up,
        }
        changes = []
        for name in ("sensor", "wifi", "cloud"):
            if judged[name] != self.up[name]:
                self.up[name] = judged[name]
                changes.append((name, judged[name]))
        return changes
