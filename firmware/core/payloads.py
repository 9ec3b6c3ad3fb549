# MQTT payloads of CONTRACTS §3, built from core state. Pure: returns dicts; the uplink encodes them.
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
