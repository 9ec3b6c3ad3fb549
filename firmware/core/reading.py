# One accepted glucose reading, as every sensor driver hands it to the core.


class Reading:
    def __init__(self, sensor_id, seq, mgdl, trend=None, minutes=None, status=0,
                 source="broadcast", backfilled=False):
        self.sensor_id = sensor_id    # what the gateway allowlists (u32 or address string)
        self.seq = seq                # strictly increasing per sensor (counter or time offset)
        self.mgdl = mgdl              # int mg/dL, or None when the sensor sent no value
        self.trend = trend            # mg/dL/min (float) or None when unknown
        self.minutes = minutes        # minutes since sensor session start, if known
        self.status = status          # bit 0 warm-up, 1 sensor error, 2 calibration, 3 battery low
        self.source = source          # "broadcast" or "cgms"
        self.backfilled = backfilled  # recovered after a gap: published, never alarms as new
        self.rx_ms = None             # ticks when the gateway accepted it (set by the core)
        self.wall_ms = None           # epoch ms when the gateway knew wall time, else None

    def __repr__(self):
        return "Reading(seq=%r, mgdl=%r, trend=%r, source=%r)" % (
            self.seq, self.mgdl, self.trend, self.source)
