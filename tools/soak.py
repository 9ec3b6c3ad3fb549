#!/usr/bin/env python3
"""Small-heap soak (issue 8): seven simulated days of the real firmware under `micropython -X heapsize=64wK`
with --noise 200 neighbours, against a real mosquitto on loopback.

    python tools/soak.py [--days 7] [--heap 64wK] [--speed 3000] [--noise 200] [--bisect] [--json FILE]
                         [--build pip64|plain32|frozen32]

--build picks the MicroPython that runs the firmware (issue 16): pip64 (default) is the venv's 64-bit unix
port with the firmware as .mpy files; plain32 is MicroPython v1.28.0's unix port built 32-bit (objects at
an ESP32's size) with the .mpy files compiled by its own mpy-cross, as `make deploy` puts them on a stock
board; frozen32 is the same port with Nightstand frozen in (firmware/manifest.py via tools/manifest_host.py),
run from a folder holding only main.py and the board config, so the firmware can only come from the
frozen modules. tools/build_ports.py builds both (cached). On the 32-bit builds a heap is given in plain
K (48K is 48 KiB, as on a board); on pip64 in K words (64wK is 64 KiB of a 32-bit board, 128 KiB there).

Holds when: the simulator plays the whole trace, no MemoryError anywhere (firmware log, `fault` events),
every reading is accepted and reaches the broker, and the heap after gc.collect() (the health topic's
heap_free, every simulated minute) grows <= 1 KiB from day 1 to day 7: the best (largest) heap_free of
day 1's last 12 hours against day 7's last 12 hours, since the largest free heap after a collection is the
live data without garbage in it. Heap sizes are MicroPython's -X heapsize: "64wK" is 64 KiB on a 32-bit
board (the unix port here is 64-bit and doubles it, so objects keep their 32-bit proportions).
The firmware runs from an .mpy tree as deployed on a board (sources would be compiled in the heap).
--noise N asks for N neighbours advertising every 10 s, but the simulator caps them at 2000 adverts per
real second, so at a high --speed the per-simulated-second rate is lower (the report says how many).
--bisect then looks for the smallest heap (in K words) that still holds,
with runs of --bisect-days (default 1) and one final run of --days at the size found.
Exit 1 when the soak does not hold.
"""
import argparse
import json
import math
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from simlib import faults  # noqa: E402

DAY = 24 * 3600
GROWTH_LIMIT = 1024
LOW_HEAP_BYTES = 8192  # firmware/core/faults.py LOW_HEAP_BYTES: under this after gc the box shows `heap`


def week_trace(days):
    """A reading every 5 minutes: a daily curve between ~80 and ~210 mg/dL, a low dip each night and a
    high each afternoon, so alarms are raised and cleared every simulated day."""
    rows = []
    for m in range(0, int(days * 24 * 60) + 1, 5):
        h = (m / 60.0) % 24
        g = 140 + 55 * math.sin((h - 9) / 24 * 2 * math.pi)
        if 2.5 <= h < 3.5:
            g = 62 if h < 3 else 52           # a low that turns urgent at night
        rows.append((m, int(round(g))))
    return rows


_TREE = {}


BUILDS = ("pip64", "plain32", "frozen32")
DEFAULT_HEAP = {"pip64": "64wK", "frozen32": "48K", "plain32": None}   # plain32: what deploy asks (main)


def mpy_tree(cross=None):
    """The firmware as a board runs it: every module compiled with mpy-cross -O0 (tools/bench_mpy.py, the
    same list and flags as the deploy), umqtt.simple compiled too, main.py and the host board config.
    Built once per process and mpy-cross. On a 64 K-word heap the sources alone do not fit while they
    compile."""
    import shutil
    import subprocess
    import bench_mpy
    cross = cross or bench_mpy._venv_tool("mpy-cross")
    if cross in _TREE:
        return _TREE[cross]
    root = tempfile.mkdtemp(prefix="nightstand-mpy-")
    _, errors = bench_mpy.compile_all(root, cross)
    if errors:
        raise RuntimeError("mpy-cross failed: %s" % errors)
    # umqtt and aioble come from .deps/lib (tools/install_deps.py; the simulator puts it on MICROPYPATH).
    extra = [(src, src[:-3] + ".mpy") for src in bench_mpy.deploy.HOST_ONLY]  # the host board itself
    vhw = os.path.join("tools", "virtual_hw")   # its virtual hardware, found next to firmware/
    extra += [(os.path.join(vhw, f), os.path.join(vhw, f[:-3] + ".mpy"))
              for f in sorted(os.listdir(os.path.join(ROOT, vhw))) if f.endswith(".py")]
    os.makedirs(os.path.join(root, vhw), exist_ok=True)
    for src, dst in extra:
        subprocess.run([cross, "-O0", "-o", os.path.join(root, dst), os.path.join(ROOT, src)], check=True)
    shutil.copy(os.path.join(ROOT, "main.py"), root)
    os.makedirs(os.path.join(root, "board_configs"))
    shutil.copy(os.path.join(ROOT, "board_configs", "host.json"), os.path.join(root, "board_configs"))
    _TREE[cross] = root
    return root


def frozen_root():
    """What the frozen build runs from: main.py and the host board config, no firmware/ (it must come
    from the frozen modules) and no umqtt (frozen too)."""
    import shutil
    if "frozen" in _TREE:
        return _TREE["frozen"]
    root = tempfile.mkdtemp(prefix="nightstand-frozen-")
    shutil.copy(os.path.join(ROOT, "main.py"), root)
    os.makedirs(os.path.join(root, "board_configs"))
    shutil.copy(os.path.join(ROOT, "board_configs", "host.json"), os.path.join(root, "board_configs"))
    _TREE["frozen"] = root
    return root


def runtime(build="pip64"):
    """(micropython binary or None for the venv's, firmware root, extra environment) for a build."""
    if build == "pip64":
        return None, mpy_tree(), {}
    import build_ports
    b = build_ports.ensure(plain=build == "plain32", frozen=build == "frozen32")
    if build == "plain32":
        return b.plain, mpy_tree(b.mpy_cross), {}
    if build == "frozen32":
        return b.frozen, frozen_root(), {"NIGHTSTAND_MICROPYPATH": ".frozen"}
    raise ValueError("build must be one of " + ", ".join(BUILDS))


def soak(days=7, heap="64wK", speed=3000, noise=200, broker_port=None, workdir=None, timeout=None, env=None,
         build="pip64", sim_args=()):
    """One soak run. Returns a dict of findings; result["holds"] says whether it held. sim_args: more
    tools/sim.py arguments, e.g. ("--source", "phone") for a gateway fed by the phone (source_args())."""
    workdir = workdir or tempfile.mkdtemp(prefix="nightstand-soak-")
    binary, fw_root, build_env = runtime(build)
    env = dict(build_env, **(env or {})) or None
    extra = ("--micropython", binary) if binary else ()
    broker = None
    if broker_port is None:
        broker = faults.start_mosquitto()
        broker_port = broker.port
    gid = "soak%d" % (int(time.time() * 1000) % 10 ** 8)
    cfg = os.path.join(workdir, "config.json")
    with open(cfg, "w") as f:
        json.dump({"gateway_id": gid}, f)
    rec = faults.Recorder(broker_port, "nightstand/" + gid, client_id="rec-" + gid)
    rows = week_trace(days)
    t0 = time.monotonic()
    try:
        run = faults.SimRun(workdir, rows, broker_port, "--config", cfg, "--heapsize", heap, "--noise", noise,
                            "--tail-s", 120, "--fw-root", fw_root, *extra, *sim_args, speed=speed, name="soak",
                            env=env)
        rc, evs, err = run.wait(timeout or (days * DAY / speed * 3 + 120))
        faults.wait_until(lambda: set(faults.accepted(evs)) <= set(rec.seqs()), 10)
        health = [json.loads(p) for p in rec.payloads("health")]
        seqs = rec.seqs()
    finally:
        rec.stop()
        if broker:
            broker.stop()
    real_s = time.monotonic() - t0
    # uptime_s is a signed 30-bit ticks difference in the firmware: after 2**29 ms (6.2 days) it jumps
    # back by 2**30 ms (found by this soak). Unwrap it in arrival order so the days stay in place.
    heapfree, offset, prev, wrapped = [], 0.0, None, 0
    for h in health:
        if not h.get("heap_free") or h.get("uptime_s") is None:
            continue
        u = h["uptime_s"] + offset
        if prev is not None and u < prev - 3600:
            offset += 2 ** 30 / 1000.0
            u += 2 ** 30 / 1000.0
            wrapped += 1
        prev = u
        heapfree.append((u, h["heap_free"]))
    mem_err = "MemoryError" in err or any("MemoryError" in json.dumps(e) for e in evs
                                          if e.get("event") in ("fault", "uplink"))
    faults_seen = sorted({e.get("name") for e in evs if e.get("event") == "fault" and e.get("active")})
    # A network source's poll that found no free heap block tries once more (firmware/shell/http_source.py
    # _fetch); one that failed twice is the source's state `heap`, and the soak does not run then.
    poll_heap_retries = err.count("no free heap block for the answer")
    poll_heap_failed = len([e for e in evs if e.get("event") == "source" and e.get("state") == "heap"])
    sent = len([r for r in rows if r[1] is not None])
    acc = faults.accepted(evs)
    lost = faults.lost_readings(evs, seqs)
    several = "--source" in sim_args and "--sensor" in sim_args
    if several:
        # Two paths: the radio numbers its readings 1, 2, 3 ... and the phone by its epoch seconds, and at
        # --speed 3000 the merge publishes some readings twice (docs/known-limits.md, "Dedup by value"),
        # so order is judged per path and a reading accepted twice is no fault. A network source's seq is
        # its reading's epoch seconds (firmware/shell/http_source.py), far above any radio counter here.
        lost = [p for p in lost if not p.startswith("out of order")]
        for path, got in (("radio", [q for q in seqs if q is not None and q < 10 ** 9]),
                          ("network", [q for q in seqs if q is not None and q >= 10 ** 9])):
            lost += ["%s: %s" % (path, p) for p in faults.lost_readings([], got)]

    def best(day):
        # the second half of that day (of the whole run, if it is shorter: --hours)
        hi = min(day, days) * DAY
        lo = hi - min(0.5, days / 2.0) * DAY
        xs = [b for s, b in heapfree if lo <= s < hi]
        return (max(xs), len(xs)) if xs else (None, 0)
    first, n1 = best(1)
    last, n7 = best(days)
    growth = None if first is None or last is None else first - last
    out = {
        "build": build, "sim_args": list(sim_args), "days": days, "heap": heap, "speed": speed, "noise": noise,
        "real_s": round(real_s, 1),
        "rc": rc,
        "memory_error": mem_err, "faults": faults_seen, "readings_sent": sent, "readings_accepted": len(acc),
        "delivery_problems": lost, "health_samples": len(heapfree),
        "heap_free_day1": first, "heap_free_last_day": last, "samples_day1": n1, "samples_last_day": n7,
        "growth_bytes": growth, "heap_free_min": min((b for _, b in heapfree), default=None),
        "poll_heap_retries": poll_heap_retries, "poll_heap_failed": poll_heap_failed,
        # health samples (one a simulated minute) under the firmware's low-heap line: the `heap` fault's share
        "low_heap_samples": len([b for _, b in heapfree if b < LOW_HEAP_BYTES]),
        "stderr_tail": err.strip().splitlines()[-3:] if rc else [],
        # per simulated day: (best heap_free after gc, worst, samples); a leak shows as a falling best
        "per_day": [[max(xs), min(xs), len(xs)] if xs else [None, None, 0] for xs in (
            [b for s, b in heapfree if d * DAY <= s < (d + 1) * DAY] for d in range(int(math.ceil(days))))],
        "health_last_uptime_s": max((s for s, _ in heapfree), default=None),
        "uptime_wrapped": wrapped,
        # messages waiting in RAM + outage queue (health's queue_depth): a slow uplink holds RAM
        "queue_depth_max": max((h.get("queue_depth") or 0 for h in health), default=None),
        # ... and at the lowest heap_free samples: at --speed 3000 the uplink lags simulated time, so
        # messages wait in RAM that at speed 1 would already be sent
        "queue_depth_when_low": sorted(((h.get("heap_free"), h.get("queue_depth")) for h in health
                                        if h.get("heap_free")), key=lambda x: x[0])[:5],
    }
    if env and "NIGHTSTAND_HEAP_TRACE" in env:
        out["stderr"] = err  # tools/heap_profile.py reads the firmware's trace lines here
    out["runs"] = rc == 0 and not mem_err and (len(acc) >= sent if several else len(acc) == sent) and not lost \
        and not poll_heap_failed
    out["holds"] = out["runs"] and growth is not None and growth <= GROWTH_LIMIT and days >= 2
    return out


def source_args(sensor="broadcast", sources=()):
    """tools/sim.py arguments for what feeds the gateway: its radio sensor (sensor "none": no radio
    sensor, only the network sources) and network sources ("phone", "nightscout")."""
    out = []
    if sensor != "none" and (sensor != "broadcast" or sources):
        out += ["--sensor", sensor]
    for s in sources:
        out += ["--source", s]
    return tuple(out)


def _kwords(heap):
    return int(heap.lower().rstrip("wk"))


def heap_unit(build):
    """-X heapsize suffix: K words on the 64-bit port (keeps 32-bit proportions), plain K on 32-bit."""
    return "wK" if build == "pip64" else "K"


def bisect(lo_kw=32, hi_kw=256, days=1, speed=3000, noise=200, step=8, log=print, build="pip64", sim_args=(),
           faults_fail=False):
    """Smallest heap (K of a 32-bit board, to `step`) in (lo, hi] where a `days` soak still runs;
    (size, tried). None when even hi does not run. faults_fail: a run that showed a fault (a crashed
    task: `fault` sounding) does not run either."""
    tried = {}
    unit = heap_unit(build)

    def runs(r):
        return r["runs"] and not (faults_fail and r["faults"])
    r = soak(days, "%d%s" % (hi_kw, unit), speed, noise, build=build, sim_args=sim_args)
    tried[hi_kw] = runs(r)
    if not tried[hi_kw]:
        log("  bisect: does not run even at %d%s (%s)" % (hi_kw, unit, _why(r)))
        return None, tried
    while hi_kw - lo_kw > step:
        mid = (lo_kw + hi_kw) // 2 // step * step or step
        r = soak(days, "%d%s" % (mid, unit), speed, noise, build=build, sim_args=sim_args)
        tried[mid] = runs(r)
        log("  bisect %s %3d%s (%d KiB on a 32-bit board): %s" % (
            build, mid, unit, mid, "runs" if tried[mid] else "fails (%s)" % (
                _why(r) if not r["runs"] else "faults: " + ", ".join(r["faults"]))))
        if tried[mid]:
            hi_kw = mid
        else:
            lo_kw = mid
    return hi_kw, tried


def _why(r):
    if r["memory_error"]:
        return "MemoryError"
    if r.get("poll_heap_failed"):
        return "%d polls found no heap block twice (state heap)" % r["poll_heap_failed"]
    if r["rc"]:
        return "exit %s: %s" % (r["rc"], " / ".join(r["stderr_tail"]))
    if r["readings_accepted"] != r["readings_sent"]:
        return "%d of %d readings accepted" % (r["readings_accepted"], r["readings_sent"])
    if r["delivery_problems"]:
        return "; ".join(r["delivery_problems"])[:120]
    if r["growth_bytes"] is None:
        return "no heap figure for the last day (health stopped at uptime %s s)" % r.get("health_last_uptime_s")
    return "heap grew %d B" % r["growth_bytes"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--hours", type=float, default=None,
                    help="instead of --days (and --bisect-days): a sensor that only runs at a low --speed "
                    "(cgms, dexcom_g6: a GATT connection is a dozen round trips over the simulator link)")
    ap.add_argument("--heap", default=None, help="-X heapsize (default: 64wK on pip64, 48K on frozen32 (the "
                    "issue 16 target), on plain32 what tools/deploy.py NEED_KIB asks of a board for the .mpy files)")
    ap.add_argument("--speed", type=float, default=3000)
    ap.add_argument("--noise", type=int, default=200)
    ap.add_argument("--bisect", action="store_true", help="also find the smallest heap that still runs")
    ap.add_argument("--bisect-days", type=int, default=1)
    ap.add_argument("--json", help="write the findings here")
    ap.add_argument("--build", choices=BUILDS, default="pip64",
                    help="pip64: the venv's 64-bit port; plain32 / frozen32: the 32-bit builds (tools/build_ports.py)")
    ap.add_argument("--bisect-lo", type=int, default=None, help="bisect from here (K of a 32-bit board)")
    ap.add_argument("--bisect-hi", type=int, default=None, help="bisect up to here")
    ap.add_argument("--bisect-step", type=int, default=None)
    ap.add_argument("--sensor", choices=("broadcast", "cgms", "dexcom_g6", "none"), default="broadcast",
                    help="the gateway's own radio sensor (tools/sim.py --sensor); none: no radio sensor")
    ap.add_argument("--source", action="append", choices=("phone", "nightscout"), default=[],
                    help="also feed the gateway from this network source (tools/sim.py --source; repeatable)")
    a = ap.parse_args(argv)
    if a.hours:
        a.days = a.bisect_days = a.hours / 24.0
    sim_args = source_args(a.sensor, a.source)
    if not a.heap and a.build == "plain32":
        import deploy
        a.heap = "%dK" % deploy.NEED_KIB["stock"]
    a.heap = a.heap or DEFAULT_HEAP[a.build]
    r = soak(a.days, a.heap, a.speed, a.noise, build=a.build, sim_args=sim_args)
    print("soak %s%s %g days, heap %s, noise %d, speed %g: %s in %.0f s real" % (
        a.build, "".join(" " + x for x in sim_args), a.days, a.heap, a.noise, a.speed,
        "HOLDS" if r["holds"] else ("RUNS (growth is judged over 2 days or more)" if r["runs"] and a.days < 2
                                    else "DOES NOT HOLD"), r["real_s"]))
    print("  readings %d/%d accepted, delivery %s, MemoryError %s, faults %s" % (
        r["readings_accepted"], r["readings_sent"], "ok" if not r["delivery_problems"] else r["delivery_problems"],
        "yes" if r["memory_error"] else "no", r["faults"] or "none"))
    print("  heap_free per day (best, worst, samples): %s; %d of %d samples under %d B" % (
        r["per_day"], r["low_heap_samples"], r["health_samples"], LOW_HEAP_BYTES))
    if r["poll_heap_retries"] or r["poll_heap_failed"]:
        print("  network polls that found no free heap block: %d, of which %d again on their retry" % (
            r["poll_heap_retries"], r["poll_heap_failed"]))
    print("  heap_free after gc: day 1 best %s B (%d samples), day %g best %s B (%d samples): growth %s B "
          "(limit %d)" % (r["heap_free_day1"], r["samples_day1"], a.days, r["heap_free_last_day"],
                          r["samples_last_day"], r["growth_bytes"], GROWTH_LIMIT))
    result = {"soak": r}
    if a.bisect:
        lo, hi, step = (32, 256, 8) if a.build == "pip64" else (16, 128, 4)
        lo, hi = a.bisect_lo or lo, a.bisect_hi or hi
        step = a.bisect_step or step
        unit = heap_unit(a.build)
        size, tried = bisect(lo, hi, days=a.bisect_days, speed=a.speed, noise=a.noise, step=step, build=a.build,
                             sim_args=sim_args)
        if size is None:
            print("  no heap up to %d%s runs" % (hi, unit))
            return 1
        final = soak(a.days, "%d%s" % (size, unit), a.speed, a.noise, build=a.build, sim_args=sim_args)
        print("  smallest heap that runs %g days: %d%s; %g days at %d%s: %s (growth %s B)" % (
            a.bisect_days, size, unit, a.days, size, unit,
            "holds" if final["holds"] else "runs" if final["runs"] and a.days < 2 else "does NOT hold: " + _why(final),
            final["growth_bytes"]))
        result["min_heap_kw"] = size
        result["min_heap_soak"] = final
        result["bisect"] = tried
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0 if r["holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
