# MQTT payloads (docs/mqtt.md, "Topics"), built from core state. Pure: returns dicts; the uplink encodes them.
from firmware.core import ticks, trend as trend_mod


def reading(r, device):
    p = {
        "type": "sgv",
        "sgv": r.mgdl,
        "direction": trend_mod.direction(r.trend),
        "seq": r.seq,
        "trend": r.trend,
        "device": device,
        "replayed": False,
    }
    if r.wall_ms is not None:  # never a wrong date: only when the gateway knows wall time
        p["date"] = r.wall_ms
    if r.backfilled:
        p["backfilled"] = True
    return p


def state(now_ms, pattern, alarm_level, sensor_up, cloud_up, last):
    return {
        "pattern": pattern,
        "alarm": alarm_level,
        "sensor": "ok" if sensor_up else "silent",
        "cloud": "ok" if cloud_up else "silent",
        "last_sgv": last.mgdl if last else None,
        "last_seq": last.seq if last else None,
        "last_age_s": ticks.age_s(now_ms, last.rx_ms) if last else None,
    }


# The outage queue keeps only what cannot be derived: a day of readings (288) must fit 16 KiB of flash.
# type, direction, device and replayed are rebuilt when the reading is sent.
def compact_reading(p):
    return [p["seq"], p["sgv"], p["trend"], p.get("date"), 1 if p.get("backfilled") else 0]


def expand_reading(c, device):
    seq, sgv, trend, date, backfilled = c
    p = {"type": "sgv", "sgv": sgv, "direction": trend_mod.direction(trend), "seq": seq,
         "trend": trend, "device": device, "replayed": True}
    if date is not None:
        p["date"] = date
    if backfilled:
        p["backfilled"] = True
    return p
