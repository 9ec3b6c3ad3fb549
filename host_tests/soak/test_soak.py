# Small-heap soak, short CI variants (issues 8 and 16), on MicroPython v1.28.0 built 32-bit so the heap is a
# board's heap (tools/build_ports.py; the 64-bit pip port doubles every object and could not tell). The
# full runs are `make bench` (tools/bench_memory.py: seven days, smallest heap) and `make soak`.
import os
import sys

import pytest

from host_tests.simrun import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import build_ports
import deploy
import soak

# Issue 16's target: with Nightstand frozen in, the gateway runs in 48 KiB. Met with the aioble stand-ins
# before main's phone/Nightscout sources and Dexcom G6 central (a day ran at 44 KiB); with the real aioble
# 0.6.2 over the virtual controller a day needs 60 KiB (52 and 56 KiB: MemoryError; make bench,
# 2026-12-01), so the target is a strict xfail: the day it fits again, this says so.
FROZEN_TARGET = "48K"


def _build(kind):
    try:
        build_ports.ensure(plain=kind == "plain32", frozen=kind == "frozen32")
    except build_ports.BuildError as e:
        if os.environ.get("NIGHTSTAND_REQUIRE_PORTS"):
            pytest.fail("the 32-bit builds are required here: %s" % e)
        pytest.skip("cannot build the 32-bit MicroPython ports here: %s" % e)


def _holds(r):
    assert r["rc"] == 0, r["stderr_tail"]
    assert not r["memory_error"], soak._why(r)
    assert r["readings_accepted"] == r["readings_sent"] and not r["delivery_problems"], soak._why(r)
    assert r["samples_day1"] > 100 and r["samples_last_day"] > 100, r["per_day"]
    assert r["growth_bytes"] <= soak.GROWTH_LIMIT, r["per_day"]


def test_two_days_with_advert_noise_hold_the_frozen_build_in_what_deploy_asks(mosquitto):
    # tools/deploy.py accepts a board with Nightstand frozen in from NEED_KIB["frozen"] (the measured day
    # minimum + 8 KiB): if the firmware outgrows that figure, this fails before a board does.
    _build("frozen32")
    _holds(soak.soak(days=2, heap="%dK" % deploy.NEED_KIB["frozen"], speed=3000, noise=200,
                     broker_port=mosquitto.port, build="frozen32"))


def test_a_dexcom_g6_under_a_crowded_sky_runs_an_hour_in_what_deploy_asks(mosquitto):
    # The G6 scans for its transmitter every 5 minutes among 20 neighbour adverts a simulated second
    # (--noise 200 at --speed 20), each from a new address. When its scan kept one aioble ScanResult per
    # address, every window ran a 96 KiB frozen gateway out of heap: the radio task crashed and the box
    # sounded `fault` every 5 minutes. The frozen build must run an hour of it, with no fault, in what
    # tools/deploy.py asks of a board for a G6 config.
    _build("frozen32")
    r = soak.soak(days=1 / 24.0, heap="%dK" % deploy.NEED_CENTRAL_KIB["dexcom_g6"]["frozen"], speed=20,
                  noise=200, broker_port=mosquitto.port, build="frozen32",
                  sim_args=soak.source_args("dexcom_g6"))
    assert r["runs"], soak._why(r)
    assert r["readings_accepted"] >= 12 and not r["faults"], (r["readings_accepted"], r["faults"])


@pytest.mark.xfail(strict=True, reason=(
    "issue 16's 48 KiB target for the frozen build is missed: with the real aioble a simulated day needs "
    "60 KiB (make bench; docs/boards.md, 'Memory: which build a board needs')"))
def test_a_day_with_advert_noise_runs_the_frozen_build_in_48k(mosquitto):
    _build("frozen32")
    r = soak.soak(days=1, heap=FROZEN_TARGET, speed=3000, noise=200, broker_port=mosquitto.port,
                  build="frozen32", timeout=120)
    assert r["runs"], soak._why(r)


def test_two_days_of_mpy_files_hold_in_what_deploy_asks_of_a_board(mosquitto):
    # tools/deploy.py refuses the .mpy firmware on a board offering less than NEED_KIB["stock"] (the
    # measured day minimum + 8 KiB): if the firmware outgrows that figure, this fails before a board does.
    _build("plain32")
    _holds(soak.soak(days=2, heap="%dK" % deploy.NEED_KIB["stock"], speed=3000, noise=200,
                     broker_port=mosquitto.port, build="plain32"))
