# Every decoder and parser against hostile input (issue 8), on CPython: hypothesis-generated inputs and a
# short seeded mutation run per target. Each target's contract (what counts as a clean refusal) lives in
# tools/fuzz.py, which `make bench` runs for >= 1 M inputs per target.
import os
import random
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from host_tests.simrun import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import fuzz

# No example database in the tree (.hypothesis/): every run is the same seeded-plus-random search.
settings.register_profile("nightstand-fuzz", database=None)
settings.load_profile("nightstand-fuzz")

SHORT = 3000        # seeded inputs per target in the tests (the bench runs 1 000 000)
EXAMPLES = 300      # hypothesis examples per target


def _mutated(cls):
    seeds = cls.seeds()
    return st.builds(lambda i, r: fuzz.mutate(random.Random(r), seeds[i % len(seeds)], seeds),
                     st.integers(0, len(seeds) - 1), st.integers(0, 2 ** 32))


def _hostile(cls, max_size=64):
    return st.one_of(st.binary(max_size=max_size), _mutated(cls), st.sampled_from(cls.seeds()))


def _check_all(target, data):
    try:
        target.check(data)
    except fuzz.Violation as e:
        pytest.fail("%s: %s (input %s)" % (target.name, e, data.hex()))


@pytest.mark.parametrize("name", sorted(fuzz.TARGETS))
def test_short_seeded_run_finds_no_violation_and_reaches_deep(name):
    r = fuzz.run_target(name, SHORT, 20260508)
    assert r["ok"], "%s: %s\n  reproduce: input %s" % (name, r.get("error"), r.get("input_hex"))
    # the run got past the first refusal: more than one kind of outcome, and some inputs accepted
    deep = {"open_broadcast": "accepted", "cgms_records": "decoded", "cgms_racp": "success",
            "commands": "accepted", "config": "built", "trace": "parsed", "outage_queue": "records",
            "g6_replies": "glucose", "g6_backfill": "records", "lan_entries": "ok"}
    assert len(r["outcomes"]) >= 2 and r["outcomes"].get(deep[name]), r["outcomes"]


# Hypothesis per target: any exception other than the target's own refusal fails the test.
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_hostile(fuzz.OpenBroadcast, 40), min_size=1, max_size=20))
def test_open_broadcast_accept(advs):
    t = fuzz.OpenBroadcast()
    for adv in advs:   # a sequence: counters and repeats carry state between frames
        _check_all(t, adv)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(_hostile(fuzz.CgmsRecords, 48), min_size=1, max_size=10))
def test_cgms_measurements_and_tracker(datas):
    t = fuzz.CgmsRecords()
    for d in datas:
        _check_all(t, d)


@settings(max_examples=EXAMPLES, deadline=None)
@given(_hostile(fuzz.CgmsRacp, 8))
def test_racp_response(b):
    _check_all(fuzz.CgmsRacp(), b)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(_hostile(fuzz.Commands, 300), min_size=1, max_size=10))
def test_command_verify(payloads):
    t = fuzz.Commands()
    for p in payloads:
        _check_all(t, p)


_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 40, 2 ** 40), st.floats(allow_nan=False),
                       st.text(max_size=40))
_config_keys = st.sampled_from(["gateway_id", "sensor", "mqtt", "alarms", "silence", "night", "commands",
                                "wifi", "kind", "id", "bind_key", "allow_plain", "host", "port", "low", "high",
                                "urgent_low", "dead_band", "units", "tls", "ca", "x"])
_config_tree = st.recursive(_json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                                 st.dictionaries(_config_keys, kids, max_size=4)),
                            max_leaves=12)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.one_of(st.dictionaries(_config_keys, _config_tree, max_size=5).map(
    lambda d: __import__("json").dumps(d).encode()), _hostile(fuzz.Config, 120)))
def test_config_build(text):
    _check_all(fuzz.Config(), text)


_trace_line = st.one_of(
    st.text(alphabet="0123456789.,-e \t\"", max_size=16),
    st.builds(lambda m, g, e: "%s,%s,%s" % (m, g, e), st.floats(allow_nan=True), st.integers(-5, 900),
              st.sampled_from(["", "broker_down", "wifi_up", "button", "nope", "sensor_off"])))


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.one_of(st.lists(_trace_line, max_size=8).map(lambda ls: ("minute,mgdl,event\n" + "\n".join(ls)).encode()),
                 _hostile(fuzz.Trace, 120)))
def test_trace_parse(data):
    _check_all(fuzz.Trace(), data)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(_hostile(fuzz.G6Replies, 24), min_size=1, max_size=10))
def test_g6_replies(datas):
    t = fuzz.G6Replies()
    for d in datas:
        _check_all(t, d)


# Streams: random lists of frames, and mutated vector streams (a byte flipped inside a frame, frames cut,
# dropped or repeated through the length prefixes).
_g6_frames = st.lists(st.binary(min_size=0, max_size=22), max_size=12).map(fuzz.G6Backfill.pack)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.one_of(_hostile(fuzz.G6Backfill, 120), st.builds(lambda rx, fr: bytes((20,)) + rx + fr,
                                                           st.binary(min_size=20, max_size=20), _g6_frames)))
def test_g6_backfill_stream(data):
    _check_all(fuzz.G6Backfill(), data)


@settings(max_examples=100, deadline=None)
@given(_hostile(fuzz.Queue, 1100))
def test_outage_queue_over_any_flash_content(data):
    _check_all(fuzz.Queue(), data)


@settings(max_examples=EXAMPLES, deadline=None)
@given(_hostile(fuzz.LanEntries, 600))
def test_lan_entries_parse(data):
    _check_all(fuzz.LanEntries(), data)
