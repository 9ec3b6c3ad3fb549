# CPython only: the outage queue through the simulator against real mosquitto. A 30-minute broker_down
# loses nothing, readings of the outage arrive in order with replayed: true; a healthy night never
# writes the queue file; a gateway restarted with readings still queued sends them.
import json
import time

from host_tests.simrun import Follower, run_sim, trace

QUEUE_FILE = "outage.q"


def _steady(start, end, mgdl):
    return [(m, mgdl) for m in range(start, end, 5)]


def test_thirty_minute_broker_down_delivers_every_outage_reading_in_order_replayed(
        tmp_path, mosquitto, gateway):
    data = tmp_path / "data"
    rows = _steady(0, 20, 120) + [(20, 121, "broker_down")] + _steady(25, 50, 122)
    rows += [(50, 123, "broker_up")] + _steady(55, 75, 124)
    f = Follower(mosquitto.port, gateway["prefix"])
    try:
        rc, evs, err = run_sim(tmp_path, trace(rows), mosquitto.port, "--config", gateway["config"],
                               "--data", str(data))
        time.sleep(0.5)
        got = f.readings()
    finally:
        f.stop()
    assert rc == 0, err
    accepted = [e["seq"] for e in evs if e["event"] == "reading"]
    assert len(accepted) == len(rows) and accepted == list(range(accepted[0], accepted[0] + len(rows)))
    seqs = [r["seq"] for r in got]
    deduped = [s for i, s in enumerate(seqs) if i == 0 or s != seqs[i - 1]]
    assert deduped == accepted, "gap or disorder at the follower: %r" % seqs
    # The readings of minutes 20 and 50 share their row with broker_down / broker_up: which side of the
    # change they land on is radio timing, so only readings clearly inside / before the outage count.
    outage = [e["seq"] for e in evs if e["event"] == "reading" and 21 * 60 <= e["t"] < 49 * 60]
    assert len(outage) == 5
    by_seq = {}
    for r in got:
        by_seq.setdefault(r["seq"], r)
    assert all(by_seq[s]["replayed"] is True for s in outage), [by_seq[s] for s in outage]
    before = [e["seq"] for e in evs if e["event"] == "reading" and e["t"] < 19 * 60]
    assert before and not any(by_seq[s]["replayed"] for s in before)
    # the queue went through flash, and is empty again: every record popped
    assert (data / QUEUE_FILE).exists()


def test_a_healthy_night_never_writes_the_outage_file(tmp_path, mosquitto, gateway):
    data = tmp_path / "data"
    rows = _steady(0, 120, 118)
    f = Follower(mosquitto.port, gateway["prefix"])
    try:
        rc, evs, err = run_sim(tmp_path, trace(rows), mosquitto.port, "--config", gateway["config"],
                               "--data", str(data))
        got = f.readings()
    finally:
        f.stop()
    assert rc == 0, err
    assert len(got) == len(rows) and not any(r["replayed"] for r in got)
    assert data.exists() and not (data / QUEUE_FILE).exists(), sorted(p.name for p in data.iterdir())


def test_a_restarted_gateway_sends_what_it_had_queued(tmp_path, mosquitto, gateway):
    data = tmp_path / "data"
    # first boot: the broker goes away and the night ends (power off) before it comes back
    rows = _steady(0, 10, 120) + [(10, 121, "broker_down")] + _steady(15, 35, 125)
    rc, evs1, err = run_sim(tmp_path, trace(rows), mosquitto.port, "--config", gateway["config"],
                            "--data", str(data), "--tail-s", "120")
    assert rc == 0, err
    queued = [e["seq"] for e in evs1 if e["event"] == "reading" and e["t"] >= 10 * 60]
    assert len(queued) == 5 and (data / QUEUE_FILE).exists()
    # second boot, broker up, no sensor: only the queue has something to say
    f = Follower(mosquitto.port, gateway["prefix"])
    try:
        rc, _, err = run_sim(tmp_path, trace([(0, None), (5, None)]), mosquitto.port, "--config",
                             gateway["config"], "--data", str(data), "--tail-s", "1200")
        time.sleep(0.5)
        got = f.readings()
    finally:
        f.stop()
    assert rc == 0, err
    assert [r["seq"] for r in got] == queued and all(r["replayed"] for r in got), got


def test_health_counts_the_flash_queue(tmp_path, mosquitto, gateway):
    cfg = tmp_path / "hcfg.json"
    cfg.write_text(json.dumps({"gateway_id": gateway["id"]}))
    rows = _steady(0, 10, 120) + [(10, 121, "broker_down")] + _steady(15, 30, 122)
    rows += [(30, 123, "broker_up")] + _steady(35, 45, 124)
    f = Follower(mosquitto.port, gateway["prefix"])
    try:
        rc, evs, err = run_sim(tmp_path, trace(rows), mosquitto.port, "--config", str(cfg))
        time.sleep(0.3)
        health = [json.loads(p) for p in f.payloads("health")]
    finally:
        f.stop()
    assert rc == 0, err
    assert health, "no health message"
    for h in health:
        assert set(h) >= {"uptime_s", "heap_free", "rssi", "queue_depth", "dropped", "resets"}, h
        assert h["dropped"] == 0 and h["heap_free"] > 0 and h["rssi"] == -55
    assert [h["uptime_s"] for h in health] == sorted(h["uptime_s"] for h in health)
