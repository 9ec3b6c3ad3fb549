#!/usr/bin/env python3
"""`make bench`: every Nightstand figure, measured on the MicroPython unix port in one run.

    python tools/bench.py [--json bench/results.json] [--quick] [--only NAME[,NAME]]
    python tools/bench.py --markdown [--json bench/results.json]     (only rewrite bench/RESULTS.md)

Prints one table (figure, value, target, met/missed) and writes bench/results.json with every figure and
the raw details, and bench/RESULTS.md (the same table in Markdown: the figures the docs point at; it is
committed, results.json is not). Each part runs the real firmware (tools/sim.py and the benches beside
it) against a real mosquitto on 127.0.0.1; nothing leaves loopback. Parts:
  latency   alarm latency p50/p99 with the broker healthy, hung and down, the phone source hung, and the
            ratios (tools/bench_latency.py)
  adverts   CPU per irrelevant advertisement in the firmware's own code (tools/bench_adverts.py, micropython)
  memory    on 32-bit builds of MicroPython v1.28.0, firmware frozen in and as .mpy files: heap after
            boot, smallest heap for a day with --noise 200, seven days (--quick: 2) at 48 KiB (frozen) and
            the growth from day 1 (tools/bench_memory.py, tools/soak.py, tools/build_ports.py)
  flash     bytes written to the data dir per reading, cloud up and cloud down (host board flash counter)
  replay    time to replay 288 queued readings (a day of broker outage) once the broker is back
  boot      boot to first reading accepted (real time, speed 1)
  offline   gateway death to `offline` at a subscriber: process killed (TCP FIN) and power cut (no FIN)
  silent    broker loss to `cloud_silent` on the box (broker down, broker hung)
  mpy       .mpy sizes and heap after import (tools/bench_mpy.py)
  g6        a simulated day on a Dexcom G6: windows caught, window opening -> reading at the core,
            the scan's share of the time between windows (tools/bench_g6.py)
  fuzz      >= 1 M inputs per decoder/parser (tools/fuzz.py; --quick: 100 000)
The machine may be noisy: medians are reported, and ratios are taken within one run.
Exit status 0 when every target is met, 1 when one is missed (the table says which), 2 when a part broke.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools", "shims"))

from simlib import faults  # noqa: E402

PY = sys.executable
MP = os.path.join(ROOT, ".venv", "bin", "micropython")
PARTS = ("latency", "adverts", "memory", "flash", "replay", "boot", "offline", "silent", "mpy", "fuzz", "g6")


class Table:
    def __init__(self):
        self.rows = []      # (figure, value text, target text, verdict)
        self.figures = {}

    def add(self, key, label, value, unit="", target=None, better="le", fmt="%.2f", note=""):
        """target: a number compared with value (le: value <= target; ge: value >= target), or None."""
        self.figures[key] = {"value": value, "unit": unit, "target": target, "note": note, "label": label,
                             "better": better, "fmt": fmt}
        if value is None:
            text, verdict = "n/a", "MISSED" if target is not None else ""
        else:
            text = (fmt % value if isinstance(value, (int, float)) else str(value)) + (" " + unit if unit else "")
            if target is None:
                verdict = ""
            else:
                ok = value <= target if better == "le" else value >= target
                verdict = "met" if ok else "MISSED"
        if target is not None:
            self.figures[key]["met"] = verdict == "met"
        ttext = "" if target is None else ("<= " if better == "le" else ">= ") + (
            fmt % target if isinstance(target, float) else str(target)) + (" " + unit if unit else "")
        self.rows.append((label, text, ttext, verdict + (" (" + note + ")" if note else "")))

    def print(self):
        w = max(len(r[0]) for r in self.rows)
        v = max(len(r[1]) for r in self.rows)
        t = max(len(r[2]) for r in self.rows)
        print("\n%-*s  %-*s  %-*s  %s" % (w, "figure", v, "measured", t, "target", "verdict"))
        print("-" * (w + v + t + 20))
        for r in self.rows:
            print("%-*s  %-*s  %-*s  %s" % (w, r[0], v, r[1], t, r[2], r[3]))

    def missed(self):
        return [k for k, f in self.figures.items() if f.get("met") is False]


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


# ---- parts -------------------------------------------------------------------------------------------
def part_latency(tab, quick, raw):
    out = os.path.join(tempfile.mkdtemp(prefix="nightstand-bench-"), "latency.json")
    n = 15 if quick else 40
    p = subprocess.run([PY, os.path.join(ROOT, "tools", "bench_latency.py"), out, "--alarms", str(n)],
                       cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if not os.path.exists(out):
        raise RuntimeError("bench_latency.py: %s" % (p.stderr.strip().splitlines() or ["no output"])[-1])
    with open(out) as f:
        r = json.load(f)
    raw["latency"] = r
    ph = r["phases"]
    for name in ("healthy", "hang", "down", "phone_hang"):
        label = {"healthy": "healthy", "hang": "broker hung", "down": "broker down",
                 "phone_hang": "phone source hung"}[name]
        tab.add("latency_%s_p50_ms" % name, "alarm latency p50, %s" % label, ph[name]["p50"], "ms")
        tab.add("latency_%s_p99_ms" % name, "alarm latency p99, %s" % label, ph[name]["p99"], "ms", 5.0)
        if ph[name]["missed"]:
            tab.add("latency_%s_missed" % name, "alarms missed, %s" % label, ph[name]["missed"], "", 0, fmt="%d")
    base50, base99 = ph["healthy"]["p50"], ph["healthy"]["p99"]
    for name in ("hang", "down", "phone_hang"):
        r50 = ph[name]["p50"] / base50 if base50 else None
        r99 = ph[name]["p99"] / base99 if base99 else None
        tab.add("latency_ratio_%s_p50" % name, "latency ratio %s/healthy (p50)" % name, r50, "", 1.5)
        tab.add("latency_ratio_%s_p99" % name, "latency ratio %s/healthy (p99)" % name, r99, "", 1.5)


def part_adverts(tab, quick, raw):
    p = subprocess.run([MP, "tools/bench_adverts.py"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    line = [x for x in p.stdout.splitlines() if x.startswith("{")]
    if not line:
        raise RuntimeError("bench_adverts.py: %s" % (p.stderr.strip() or p.stdout.strip())[-300:])
    r = json.loads(line[-1])
    raw["adverts"] = r
    tab.add("us_per_irrelevant_advert", "CPU per irrelevant advert (firmware code)",
            r["us_per_irrelevant_advert"], "us", r.get("target_us", 5.0))
    tab.add("us_per_accepted_frame", "CPU per accepted encrypted frame", r.get("us_per_accepted_encrypted_frame"),
            "us", fmt="%.1f")


def part_memory(tab, quick, raw):
    """Issue 16: heap on the 32-bit builds (frozen and .mpy files), tools/bench_memory.py. Replaces the
    64wK target on the 64-bit pip port, which could not tell whether the gateway fits an ESP32."""
    import bench_memory
    res = {}
    for build in bench_memory.BUILDS:
        res[build] = bench_memory.measure(build, quick, log=log)
    raw["memory"] = res
    bench_memory.add_rows(tab, res)


part_soak = part_memory  # `--only soak` still names the heap part


def _gateway(workdir, name, extra=None):
    gid = "%s%d" % (name, int(time.time() * 1000) % 10 ** 7)
    cfg = dict({"gateway_id": gid}, **(extra or {}))
    path = os.path.join(workdir, name + "-config.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return gid, path


def part_flash(tab, quick, raw):
    work = tempfile.mkdtemp(prefix="nightstand-bench-flash-")
    broker = faults.start_mosquitto()
    try:
        gid, cfg = _gateway(work, "flash")
        up = [(m, 120 + (m // 5) % 9) for m in range(0, 240, 5)]          # 4 h with the cloud up
        down = [(m, 110 + (m // 5) % 9) for m in range(240, 480, 5)]      # 4 h with the broker down
        down[0] = (240, down[0][1], "broker_down")
        back = [(480, 118, "broker_up")] + [(m, 118) for m in range(485, 540, 5)]
        rc, evs, err = faults.run(work, up + down + back, broker.port, "--config", cfg, speed=600,
                                  env={"NIGHTSTAND_FLASH_EVENTS": "1"}, name="flash")
    finally:
        broker.stop()
    if rc:
        raise RuntimeError(err.strip()[-300:])

    def per_reading(t0, t1, only=None):
        n = len([e for e in evs if e.get("event") == "reading" and t0 <= e["t"] < t1])
        b = sum(e["bytes"] for e in evs if e.get("event") == "flash" and t0 <= e["t"] < t1
                and (only is None or e["path"].startswith(only)))
        w = len([e for e in evs if e.get("event") == "flash" and t0 <= e["t"] < t1
                 and (only is None or e["path"].startswith(only))])
        return b / n if n else None, w / n if n else None, n
    # cloud up: after boot (its one-off config/counter writes) to the outage; cloud down: the outage
    q_up, qw_up, n_up = per_reading(60, 240 * 60, "outage")
    a_up, aw_up, _ = per_reading(60, 240 * 60)
    q_dn, qw_dn, n_dn = per_reading(240 * 60, 480 * 60, "outage")
    a_dn, aw_dn, _ = per_reading(240 * 60, 480 * 60)
    raw["flash"] = {"readings_up": n_up, "readings_down": n_dn,
                    "by_file": sorted({(e["path"]) for e in evs if e.get("event") == "flash"})}
    tab.add("flash_B_per_reading_up_queue", "flash bytes/reading, cloud up (outage queue)", q_up, "B", 0.0,
            fmt="%.1f")
    tab.add("flash_writes_per_reading_up_all", "flash writes/reading, cloud up (all files)", aw_up, "", 0.0,
            fmt="%.2f", note="replay counter, one write per 10 frames" if aw_up else "")
    tab.add("flash_B_per_reading_up_all", "flash bytes/reading, cloud up (all files)", a_up, "B", fmt="%.1f")
    tab.add("flash_B_per_reading_down", "flash bytes/reading, cloud down (all files)", a_dn, "B", fmt="%.1f")
    tab.add("flash_B_per_reading_down_queue", "flash bytes/reading, cloud down (outage queue)", q_dn, "B",
            fmt="%.1f")


def part_replay(tab, quick, raw):
    work = tempfile.mkdtemp(prefix="nightstand-bench-replay-")
    broker = faults.start_mosquitto()
    try:
        gid, cfg = _gateway(work, "replay")
        rec = faults.Recorder(broker.port, "nightstand/" + gid, client_id="rec-" + gid)
        rows = [(0, 120), (5, 121, "broker_down")]
        rows += [(10 + 5 * i, 100 + i % 50) for i in range(288)]   # 288 readings made during the outage
        end = 10 + 5 * 288
        rows += [(end, 120, "broker_up"), (end + 5, 121), (end + 10, 122)]
        rc, evs, err = faults.run(work, rows, broker.port, "--config", cfg, "--drain-s", "60", speed=3000,
                                  name="replay")
        faults.wait_until(lambda: len([r for r in rec.readings() if r.get("replayed")]) >= 288, 20)
        timed = rec.timed("reading")
        rec.stop()
    finally:
        broker.stop()
    if rc:
        raise RuntimeError(err.strip()[-300:])
    replayed = []
    for t, p in timed:
        r = json.loads(p)
        if r.get("replayed"):
            replayed.append((t, r["seq"]))
    outage = set(range(3, 3 + 288))
    got = {s for _, s in replayed} & outage
    span = replayed[-1][0] - replayed[0][0] if len(replayed) > 1 else None
    dropped = len(outage - got)
    raw["replay"] = {"replayed": len(replayed), "outage_readings_delivered": len(got), "first_to_last_s": span}
    per = span / (len(replayed) - 1) if span else None
    raw["replay"]["ms_per_reading"] = per and per * 1000
    if len(got) == 288:
        tab.add("replay_288_s", "replay of 288 queued readings, first to last", span, "s", 10.0)
    else:   # the queue dropped some: what came back, and 288 at the same pace
        tab.add("replay_got_s", "replay of the queued readings, first to last", span, "s",
                note="%d of 288 came back" % len(got))
        tab.add("replay_288_s", "replay of 288 at that pace (projected)", per and per * 287, "s", 10.0)
    tab.add("replay_288_lost", "outage readings not delivered (queue full)", dropped, "", 0, fmt="%d")


def part_boot(tab, quick, raw):
    from firmware.sensor.open_broadcast import encode_frame
    work = tempfile.mkdtemp(prefix="nightstand-bench-boot-")
    ad = os.path.join(work, "adverts.jsonl")
    frame = encode_frame(faults.SENSOR_ID, 1, 120, 0.0, 700, 0, faults.DEMO_KEY)
    with open(ad, "w") as f:   # a bridge repeating its frame twice a second
        for i in range(40):
            f.write(json.dumps({"minute": i / 120.0, "addr": "c4:7a:01:22:33:44", "rssi": -60,
                                "adv_hex": frame.hex()}) + "\n")
    broker = faults.start_mosquitto()
    times, walls = [], []
    try:
        for k in range(3 if quick else 5):
            gid, cfg = _gateway(work, "boot%d" % k)
            run = faults.SimRun(work, [(0, None), (0.08, None)], broker.port, "--config", cfg, "--adverts", ad,
                                "--drain-s", "0", speed=1, name="boot%d" % k)
            evs = run.wait_for(lambda e: any(x.get("event") == "reading" for x in e), 60)
            walls.append(time.monotonic() - run.started)
            times.append(next(x["t"] for x in evs if x.get("event") == "reading"))
            run.wait(60)
    finally:
        broker.stop()
    raw["boot"] = {"first_reading_t_s": times, "wall_incl_simulator_start_s": walls}
    tab.add("boot_to_first_reading_s", "boot to first reading accepted (median)", statistics.median(times), "s",
            note="1 s `booting` + the radio's first scan; firmware import not included")
    tab.add("boot_wall_s", "  same, from launching the simulator", statistics.median(walls), "s")


def part_offline(tab, quick, raw):
    broker = faults.start_mosquitto()
    work = tempfile.mkdtemp(prefix="nightstand-bench-offline-")
    out = {}
    try:
        for kind in ("killed", "power_cut"):
            gid, cfg = _gateway(work, "off" + kind[0])
            rec = faults.Recorder(broker.port, "nightstand/" + gid, client_id="rec-" + gid)
            proxy = faults.ThreadedProxy(broker.port)
            run = faults.SimRun(work, [(0, 120), (5, 120), (600, None)], proxy.port, "--config", cfg, speed=1,
                                name="off" + kind)
            try:
                if not faults.wait_until(lambda rec=rec: b"online" in rec.payloads("availability"), 30):
                    raise RuntimeError("gateway never online")
                time.sleep(1.0)
                if kind == "power_cut":
                    proxy.set_mode("halfopen")   # the gateway's FIN (and anything else) never reaches the broker
                t0 = faults.kill_firmware(run)
                faults.wait_until(lambda rec=rec, t0=t0: any(p == b"offline" and t > t0
                                                             for t, p in rec.timed("availability")), 90)
                offl = [t for t, p in rec.timed("availability") if p == b"offline" and t > t0]
                out[kind] = offl[0] - t0 if offl else None
            finally:
                run.wait(30)
                proxy.close()
                rec.stop()
    finally:
        broker.stop()
    raw["offline"] = out
    tab.add("offline_killed_s", "gateway process killed -> `offline`", out.get("killed"), "s", 45.0)
    tab.add("offline_power_cut_s", "gateway power cut (no FIN) -> `offline`", out.get("power_cut"), "s", 45.0,
            note="keepalive 30 s x 1.5 at the broker")


def part_silent(tab, quick, raw):
    broker = faults.start_mosquitto()
    work = tempfile.mkdtemp(prefix="nightstand-bench-silent-")
    out = {}
    try:
        for ev in ("broker_down", "broker_hang"):
            gid, cfg = _gateway(work, ev[7:])
            rows = [(m, 120) for m in range(0, 10, 5)] + [(10, 120, ev)] + [(m, 120) for m in range(15, 20, 5)]
            rc, evs, err = faults.run(work, rows, broker.port, "--config", cfg, "--drain-s", "0", speed=60,
                                      name=ev)
            if rc:
                raise RuntimeError(err.strip()[-300:])
            e = faults.first_after(evs, 600, event="pattern", name="cloud_silent")
            out[ev] = e["t"] - 600 if e else None
    finally:
        broker.stop()
    raw["silent"] = out
    tab.add("cloud_silent_after_down_s", "broker down -> `cloud_silent` (simulated)", out.get("broker_down"), "s",
            60.0 + 2, fmt="%.1f", note="silence.cloud_after_s 60 + a tick")
    tab.add("cloud_silent_after_hang_s", "broker hung -> `cloud_silent` (simulated)", out.get("broker_hang"), "s",
            60.0 + 2, fmt="%.1f")


def part_mpy(tab, quick, raw):
    out = os.path.join(tempfile.mkdtemp(prefix="nightstand-bench-mpy-"), "mpy.json")
    p = subprocess.run([PY, os.path.join(ROOT, "tools", "bench_mpy.py"), "--json", out], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    if os.path.exists(out):
        with open(out) as f:
            r = json.load(f)
        raw["mpy"] = r
        tab.add("mpy_total_B", ".mpy size, whole firmware", r["mpy_total"], "B", fmt="%d")
        tab.add("heap_after_import_free_B", "heap free after importing it all (64wK)", r["heap"]["free"], "B",
                fmt="%d")
        tab.add("heap_after_import_firmware_B", "heap the firmware's modules hold", r["heap"]["firmware"], "B",
                fmt="%d")
        return
    tail = (p.stdout.strip().splitlines() + p.stderr.strip().splitlines())[-1:] or ["no output"]
    raw["mpy"] = {"error": tail[0]}
    tab.add("heap_after_import_free_B", "import the whole firmware under 64wK", "fails: " + tail[0][:60],
            note="tools/bench_mpy.py")


def part_g6(tab, quick, raw):
    """Issue 15: the G6 central over a simulated day (6 h with --quick) at 120x, no faults (at 300x a
    loaded machine misses windows: the firmware oversleeps by a fraction of a real second)."""
    import bench_g6
    hours = 6.0 if quick else 24.0
    res = bench_g6.measure(hours, 120.0)
    raw["g6"] = res
    tab.add("g6_windows_caught_pct", "G6 windows caught over %g h (%d of %d)" % (hours, res["caught"], res["windows"]),
            res["caught_pct"], "%", target=100.0, better="ge", fmt="%.1f", note="no faults")
    tab.add("g6_latency_median_s", "G6 window opening -> reading at the core (median)", res["latency_median_s"],
            "s", fmt="%.1f", note="simulated time")
    tab.add("g6_latency_p99_s", "  same, p99", res["latency_p99_s"], "s", fmt="%.1f")
    tab.add("g6_scan_duty_pct", "G6 scanning share of time once the rhythm is known", res["scan_duty_pct"], "%",
            fmt="%.1f", note="scan at 60 % duty inside it; the rest of the time the radio is Wi-Fi's")


def part_fuzz(tab, quick, raw):
    out = os.path.join(tempfile.mkdtemp(prefix="nightstand-bench-fuzz-"), "fuzz.json")
    n = 100000 if quick else 1000000
    p = subprocess.run([PY, os.path.join(ROOT, "tools", "fuzz.py"), "--n", str(n), "--json", out], cwd=ROOT,
                       capture_output=True, text=True, timeout=7200)
    with open(out) as f:
        r = json.load(f)
    raw["fuzz"] = r
    for name, t in sorted(r["targets"].items()):
        tab.add("fuzz_%s_inputs" % name, "fuzz %s: inputs, no violation" % name, t["inputs"], "", n, better="ge",
                fmt="%d")
    if r["failures"]:
        tab.add("fuzz_failures", "fuzz contract violations", len(r["failures"]), "", 0, fmt="%d",
                note=r["failures"][0]["target"] + ": " + r["failures"][0]["error"][:50])
    print(p.stdout.strip())


def _cell(v, fmt, unit):
    if v is None:
        return "n/a"
    try:
        text = fmt % v if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)
    except (TypeError, ValueError):
        text = str(v)
    return (text + (" " + unit if unit else "")).replace("|", "\\|")


def markdown(results):
    """bench/RESULTS.md from the dict bench/results.json holds: one row per figure, in measuring order."""
    lines = ["# Nightstand bench results", "",
             "Generated by `python tools/bench.py` from `bench/results.json`; do not edit by hand, run "
             "`make bench` (or `python tools/bench.py --markdown` to rewrite this file from the JSON).", "",
             "Measured %s%s on %s CPUs, Python %s. A missed target says MISSED; docs/known-limits.md says why." % (
                 results.get("when", "?"), " (--quick)" if results.get("quick") else "",
                 results.get("machine", {}).get("cpus", "?"), results.get("machine", {}).get("python", "?")), "",
             "| figure | measured | target | verdict |", "|---|---|---|---|"]
    for key, f in results.get("figures", {}).items():
        fmt, unit, target = f.get("fmt", "%.2f"), f.get("unit", ""), f.get("target")
        ttext = "" if target is None else ("<= " if f.get("better", "le") == "le" else ">= ") + _cell(
            target, fmt if isinstance(target, float) else "%s", unit)
        verdict = "" if "met" not in f else ("met" if f["met"] else "MISSED")
        if f.get("note"):
            verdict += " (" + str(f["note"]).replace("|", "\\|") + ")"
        lines.append("| %s | %s | %s | %s |" % (str(f.get("label", key)).replace("|", "\\|"),
                                                _cell(f.get("value"), fmt, unit), ttext, verdict.strip()))
    if results.get("broken"):
        lines += ["", "Parts that could not be measured: " + ", ".join(
            "%s (%s)" % (k, v) for k, v in sorted(results["broken"].items()))]
    return "\n".join(lines) + "\n"


def write_markdown(json_path, md_path=None):
    """Writes bench/RESULTS.md (beside the JSON) from results.json; returns the path written."""
    with open(json_path) as f:
        results = json.load(f)
    md_path = md_path or os.path.join(os.path.dirname(os.path.abspath(json_path)), "RESULTS.md")
    with open(md_path, "w") as f:
        f.write(markdown(results))
    return md_path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results.json"))
    ap.add_argument("--quick", action="store_true", help="shorter soak (2 days), 100 000 fuzz inputs, fewer alarms")
    ap.add_argument("--only", help="comma-separated parts: " + ", ".join(PARTS))
    ap.add_argument("--markdown", action="store_true",
                    help="measure nothing: rewrite RESULTS.md beside --json from that file")
    a = ap.parse_args(argv)
    if a.markdown:
        if not os.path.exists(a.json):
            print("bench: no %s yet: run `make bench` first" % a.json)
            return 2
        print("bench: wrote %s" % write_markdown(a.json))
        return 0
    parts = a.only.split(",") if a.only else list(PARTS)
    tab, raw, broken = Table(), {}, {}
    t0 = time.monotonic()
    for name in parts:
        log("%s ..." % name)
        t = time.monotonic()
        try:
            globals()["part_" + name](tab, a.quick, raw)
        except Exception as e:  # a broken part is reported, the others still run
            broken[name] = "%s: %s" % (type(e).__name__, e)
            tab.add("broken_" + name, "%s: could not be measured" % name, str(e)[:70])
        log("%s done in %.0f s" % (name, time.monotonic() - t))
    tab.print()
    missed = tab.missed()
    print("\n%d figures, %d targets missed%s, %d parts broken; %.0f s; results: %s" % (
        len(tab.figures), len(missed), (" (" + ", ".join(missed) + ")") if missed else "", len(broken),
        time.monotonic() - t0, a.json))
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "quick": a.quick, "figures": tab.figures,
                   "missed": missed, "broken": broken, "details": raw,
                   "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}, f, indent=1,
                  default=str)
    if not a.only:  # RESULTS.md is the full set of figures; a partial run leaves it as it was
        log("wrote %s" % write_markdown(a.json))
    return 2 if broken else (1 if missed else 0)


if __name__ == "__main__":
    sys.exit(main())
