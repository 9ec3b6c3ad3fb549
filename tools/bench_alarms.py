# Alarm benchmark: the Nightstand alarm engine against Nightscout's simple alarms on simulated
# patients (simglucose, the UVA/Padova T1D simulator).
#
#   .venv/bin/python tools/bench_alarms.py            # full run (traces cached under build/)
#   .venv/bin/python tools/bench_alarms.py --days 1 --patients 2   # quick look
#   .venv/bin/micropython tools/bench_alarms.py --replay FILE        # used by the bench itself
#
# The top of this file imports only what MicroPython has: the same replay() runs the engine
# under CPython and under the unix port, and the bench compares the two decision streams.
import sys

sys.path.insert(0, ".")
from firmware.core import ticks
from firmware.core.alarms import AlarmEngine
from firmware.core.reading import Reading

_START = ticks.PERIOD - 7200000  # every trace starts 2 h before the 2**30 ticks wrap
_TICK_S = 30                     # how often the replay calls tick() (the gateway: every second)
_SILENT_MS = 660000              # silence.sensor_after_s default: when stale() is called
LOW_SIDE = ("urgent_low", "low", "urgent_low_soon", "falling_fast")


def replay(samples, policy):
    """samples: [(minute, mgdl or None)] in time order. Returns [(minute, level, state)] for
    every alarm event the policy emits; ticks run every _TICK_S and stale() when the newest
    reading is older than the sensor-silent limit, as the gateway core does.
    A hand-over to sensor_silent is one continuous alarm for the family (sensor_silent sounds at
    least as loudly), so it is not reported as a clear: a handed-over level that is raised again
    by the first fresh reading continues, and one that is not is cleared at that reading."""
    out = []
    last_ms = None
    is_stale = False
    handed = []
    prev_min = samples[0][0] if samples else 0
    seq = 0
    for minute, mgdl in samples:
        s = prev_min * 60 + _TICK_S
        while s < minute * 60:
            now = ticks.add(_START, int(s * 1000))
            for e in policy.tick(now):
                out.append((s / 60.0, e["level"], e["state"]))
            if last_ms is not None and not is_stale and ticks.diff(now, last_ms) > _SILENT_MS:
                is_stale = True
                for e in policy.stale(now):
                    if e.get("handover"):
                        handed.append(e["level"])
                    else:
                        out.append((s / 60.0, e["level"], e["state"]))
            s += _TICK_S
        prev_min = minute
        if mgdl is None:
            continue
        now = ticks.add(_START, int(minute * 60000))
        seq += 1
        last_ms, is_stale = now, False
        again = []
        for e in policy.on_reading(now, Reading(1, seq, mgdl)):
            if e["state"] == "raised" and e["level"] in handed:
                again.append(e["level"])
            else:
                out.append((minute, e["level"], e["state"]))
        for level in handed:
            if level not in again:
                out.append((minute, level, "cleared"))
        handed = []
    return out


def _read_samples(path):
    rows = []
    with open(path) as f:
        f.readline()
        for line in f:
            m, v = line.strip().split(",")[:2]
            rows.append((float(m), int(v) if v else None))
    return rows


def _mp_main(path):
    for m, level, state in replay(_read_samples(path), AlarmEngine({})):
        print("%.1f %s %s" % (m, level, state))


# ------------------------- CPython only below -------------------------

_PATIENTS = ["adolescent#%03d" % i for i in range(1, 6)] + ["adult#%03d" % i for i in range(1, 6)]
_DAYS = 3
_TRACE_DIR = "build/alarm_traces"
_DROP = 0.03   # share of 5-min readings lost on the radio (BLE loss is real; tests robustness)


def _simulate(args):
    """One patient, `days` days of meals with carb-counting errors. Returns [(minute, bg, cgm)]
    on the simulator's 3-min sensor grid. Cached as CSV under build/."""
    import os
    name, seed, days = args
    path = "%s/%s_s%d_%dd.csv" % (_TRACE_DIR, name.replace("#", ""), seed, days)
    if os.path.exists(path):
        rows = []
        with open(path) as f:
            f.readline()
            for line in f:
                m, bg, cgm = line.split(",")
                rows.append((float(m), float(bg), float(cgm)))
        return rows
    import logging
    from datetime import datetime, timedelta
    import numpy as np
    from simglucose.simulation.env import T1DSimEnv
    from simglucose.controller.basal_bolus_ctrller import BBController
    from simglucose.controller.base import Action
    from simglucose.sensor.cgm import CGMSensor
    from simglucose.actuator.pump import InsulinPump
    from simglucose.patient.t1dpatient import T1DPatient
    from simglucose.simulation.scenario_gen import RandomScenario
    from simglucose.simulation.sim_engine import SimObj
    logging.disable(logging.CRITICAL)

    class CarbCountingErrors(BBController):
        # Real families misjudge carbs: each meal bolus is scaled by a factor drawn from
        # 0.8..1.7 (mostly over-bolus), which is what produces post-meal and night hypos.
        def __init__(self, seed):
            super().__init__()
            self.rng = np.random.RandomState(seed)

        def policy(self, observation, reward, done, **kw):
            a = super().policy(observation, reward, done, **kw)
            if a.bolus > 0:
                a = Action(basal=a.basal, bolus=a.bolus * self.rng.uniform(0.8, 1.7))
            return a

    start = datetime(2025, 1, 1, 0, 0, 0)
    env = T1DSimEnv(T1DPatient.withName(name), CGMSensor.withName("Dexcom", seed=seed),
                    InsulinPump.withName("Insulet"), RandomScenario(start_time=start, seed=seed))
    sim = SimObj(env, CarbCountingErrors(seed), timedelta(days=days), animate=False,
                 path="build/simglucose_out")
    sim.simulate()
    r = sim.results()
    rows = []
    for t, bg, cgm in zip(r.index, r["BG"], r["CGM"]):
        rows.append(((t - start).total_seconds() / 60.0, float(bg), float(cgm)))
    os.makedirs(_TRACE_DIR, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write("minute,bg,cgm\n")
        for m, bg, cgm in rows:
            f.write("%.1f,%.3f,%.3f\n" % (m, bg, cgm))
    os.replace(path + ".tmp", path)
    return rows


def to_5min(rows, seed):
    """What a 5-min CGM transmitter sends: at each 5-min mark the newest sensor sample (3-min
    grid), whole mg/dL within the 40..400 a CGM reports; _DROP of them lost, seeded."""
    import random
    rng = random.Random(seed)
    out = []
    i = 0
    end = rows[-1][0]
    m = 0.0
    while m <= end:
        while i + 1 < len(rows) and rows[i + 1][0] <= m:
            i += 1
        v = int(round(min(400, max(40, rows[i][2]))))
        out.append((m, None if rng.random() < _DROP else v))
        m += 5.0
    return out


def episodes(rows, below=70.0, min_len=15.0, merge_gap=15.0):
    """True hypo episodes: runs of bg < below on the 3-min grid; runs separated by less than
    merge_gap minutes are one episode; kept when it lasts >= min_len. [(start, end)] minutes."""
    runs = []
    step = rows[1][0] - rows[0][0]
    start = None
    for m, bg, _ in rows:
        if bg < below and start is None:
            start = m
        elif bg >= below and start is not None:
            runs.append([start, m])
            start = None
    if start is not None:
        runs.append([start, rows[-1][0] + step])
    merged = []
    for r in runs:
        if merged and r[0] - merged[-1][1] < merge_gap:
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    return [(a, b) for a, b in merged if b - a >= min_len]


def _side(level):
    return "low" if level in LOW_SIDE else "high"


def activity(events):
    """Onsets [(minute, side)] (a side goes from no alarm to some alarm) and active intervals
    [(start, end, side)] from a policy's events (nobody presses a button in the bench)."""
    active = {"low": set(), "high": set()}
    since = {}
    onsets, spans = [], []
    for m, level, state in events:
        side = _side(level)
        if state == "raised" and level not in active[side]:
            if not active[side]:
                onsets.append((m, side))
                since[side] = m
            active[side].add(level)
        elif state == "cleared" and level in active[side]:
            active[side].discard(level)
            if not active[side]:
                spans.append((since[side], m, side))
    for side in active:
        if active[side]:
            spans.append((since[side], 1e12, side))
    return onsets, spans


# A true excursion, the same for every policy: the consensus target range is 70..180 mg/dL.
TRUE_LOW = 70.0
TRUE_HIGH = 180.0


def score(rows, events, low_t, high_t, lead=30.0, near=30.0):
    """Per-trace counts for one policy. lead: an alarm up to this long before an episode starts
    counts for it (prediction). nuisance: an alarm onset with no true excursion (true BG below
    TRUE_LOW for a low-side alarm, above TRUE_HIGH for a high-side one) within `near` minutes
    either side. off_own: onsets where the true BG stayed on the safe side of the policy's own
    threshold (low_t / high_t) within `near` minutes (printed for information)."""
    onsets, spans = activity(events)
    eps = episodes(rows)
    caught, delays, raises, multi = 0, [], [], []
    for a, b in eps:
        w0 = a - lead
        first = None
        for s, e, side in spans:
            if side == "low" and s <= b and e >= w0:
                first = s if first is None else min(first, s)   # when that alarm started
        if first is not None:
            caught += 1
            delays.append(first - a)
        n = len([1 for m, side in onsets if side == "low" and w0 <= m <= b])
        n += len([1 for s, e, side in spans if side == "low" and s < w0 <= e])
        raises.append(n)
        if n > 1:
            multi.append((a, b, n))
    # Minutes the low side was active (sounding or showing, nobody presses in the bench): the
    # price of holding an alarm until the recovery is confirmed.
    end = rows[-1][0]
    low_min = sum([min(e, end) - s for s, e, side in spans if side == "low"])
    nuisance = off_own = 0
    for m, side in onsets:
        near_bg = [bg for t, bg, _ in rows if m - near <= t <= m + near]
        if side == "low":
            nuisance += min(near_bg) >= TRUE_LOW
            off_own += min(near_bg) >= low_t
        else:
            nuisance += max(near_bg) <= TRUE_HIGH
            off_own += max(near_bg) <= high_t
    return {"episodes": len(eps), "caught": caught, "delays": delays, "raises": raises,
            "nuisance": nuisance, "off_own": off_own, "onsets": len(onsets), "multi": multi,
            "low_min": low_min}


def _median(xs):
    if not xs:
        return float("nan")
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def _mp_check(samples, path):
    """Run one trace under the MicroPython unix port; True when its decisions equal CPython's."""
    import os
    import subprocess
    with open(path, "w") as f:
        f.write("minute,mgdl\n")
        for m, v in samples:
            f.write("%.1f,%s\n" % (m, "" if v is None else v))
    mp = os.path.join(os.path.dirname(sys.executable), "micropython")
    res = subprocess.run([mp, "tools/bench_alarms.py", "--replay", path],
                         capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        print("micropython failed:", res.stderr.strip()[-500:])
        return False, 0
    mine = ["%.1f %s %s" % e for e in replay(samples, AlarmEngine({}))]
    theirs = res.stdout.strip().splitlines()
    return mine == theirs, len(mine)


def main(argv):
    import argparse
    import time
    from multiprocessing import Pool
    sys.path.insert(0, "tools")
    from alarm_baseline import NightscoutSimple, BG_TARGET_BOTTOM, BG_TARGET_TOP

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--days", type=int, default=_DAYS)
    ap.add_argument("--patients", type=int, default=len(_PATIENTS), help="first N of the 10")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--alarms", default="{}", help="alarms config (JSON) for the nightstand policy")
    args = ap.parse_args(argv)
    t0 = time.time()
    names = _PATIENTS[:args.patients]
    jobs = [(n, 100 + i, args.days) for i, n in enumerate(names)]
    print("simglucose: %d patients x %d days (cached in %s) ..." % (len(jobs), args.days, _TRACE_DIR))
    with Pool(args.jobs) as pool:
        traces = pool.map(_simulate, jobs)
    print("traces ready in %.0f s" % (time.time() - t0))

    import json
    alarms = json.loads(args.alarms)
    policies = (("nightstand", lambda: AlarmEngine(alarms), 70, 250),
                ("nightscout", NightscoutSimple, BG_TARGET_BOTTOM, BG_TARGET_TOP))
    total = {}
    per_patient = []
    multi = []
    for (name, seed, _days), rows in zip(jobs, traces):
        samples = to_5min(rows, seed)
        line = [name]
        for pname, make, lo_t, hi_t in policies:
            s = score(rows, replay(samples, make()), lo_t, hi_t)
            t = total.setdefault(pname, {"episodes": 0, "caught": 0, "delays": [], "raises": [],
                                         "nuisance": 0, "off_own": 0, "onsets": 0, "low_min": 0})
            for k in t:
                t[k] = t[k] + s[k]
            if pname == "nightstand":
                for a, b, n in s["multi"]:
                    multi.append("  %s: episode %.0f..%.0f min raised %d times" % (name, a, b, n))
            line.append("%s %d/%d caught, %d nuisance" % (pname, s["caught"], s["episodes"],
                                                         s["nuisance"]))
        per_patient.append("  " + "; ".join(line))
    pdays = float(len(jobs) * args.days)
    print("\nper patient:")
    print("\n".join(per_patient))
    print("\n%d patient-days, 5-min CGM, %d%% of readings dropped" % (pdays, _DROP * 100))
    hdr = "%-11s %-13s %-20s %-16s %-19s %-13s %-18s %s" % (
        "policy", "hypos caught", "median start->alarm", "nuisance/pt-day", "raises/episode",
        "alarm onsets", "off own threshold", "low-side h/pt-day")
    print(hdr)
    for pname, _, _, _ in policies:
        t = total[pname]
        r = t["raises"]
        mean_r = sum(r) / float(len(r)) if r else float("nan")
        print("%-11s %-13s %-20s %-16s %-19s %-13d %-18d %.1f" % (
            pname, "%d/%d" % (t["caught"], t["episodes"]),
            "%+.1f min" % _median(t["delays"]), "%.2f (%d)" % (t["nuisance"] / pdays, t["nuisance"]),
            "mean %.2f, max %d" % (mean_r, max(r) if r else 0), t["onsets"], t["off_own"],
            t["low_min"] / 60.0 / pdays))
    print("nuisance: an alarm onset with no true excursion (true BG < %d or > %d) within 30 min;"
          % (TRUE_LOW, TRUE_HIGH))
    print("off own threshold: true BG stayed on the safe side of the policy's own threshold.")
    one = len([x for x in total["nightstand"]["raises"] if x == 1])
    print("\nnightstand: one raise in %d of %d episodes" % (one, len(total["nightstand"]["raises"])))
    if multi:
        print("\n".join(multi))
    e, b = total["nightstand"], total["nightscout"]
    checks = [
        ("every hypo episode caught", e["caught"] == e["episodes"]),
        ("nuisance <= half of baseline's", e["nuisance"] * 2 <= b["nuisance"]),
        ("one raise per episode", all(x == 1 for x in e["raises"])),
    ]
    ok, n = _mp_check(to_5min(traces[0], jobs[0][1]), "build/alarm_mp_trace.csv")
    checks.append(("unix port decides identically (%s, %d events)" % (jobs[0][0], n), ok))
    print()
    for what, good in checks:
        print("%-4s %s" % ("OK" if good else "MISS", what))
    print("\ntotal %.0f s" % (time.time() - t0))
    return 0 if all(g for _, g in checks) else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--replay":
        _mp_main(sys.argv[2])
    else:
        sys.exit(main(sys.argv[1:]))
