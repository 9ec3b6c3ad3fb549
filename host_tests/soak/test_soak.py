# Small-heap soak, short CI variant (issue 8). The full run is `python tools/soak.py --bisect` (seven
# simulated days, then the smallest heap that runs), called by `make bench` and `make soak`.
import os
import sys

import pytest

from host_tests.simrun import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import soak

# A heap the firmware runs in today with room to spare. With the real aioble (.deps/lib) over the host's
# virtual BLE controller (tools/virtual_hw, ~14 KiB of host-only module that a board's NimBLE keeps
# outside the Python heap) and main's sources and bounds, one simulated day holds at 144wK (lowest free
# 73 KB) and not at 128wK (the uplink never connects and its spill to flash hits MemoryError in a heap
# the advert flood fragments); docs/known-limits.md. 160wK keeps 16 K words of margin for a loaded CI
# machine.
ROOMY = "160wK"


def test_two_days_with_advert_noise_hold_the_heap_flat(mosquitto):
    r = soak.soak(days=2, heap=ROOMY, speed=3000, noise=200, broker_port=mosquitto.port)
    assert r["rc"] == 0, r["stderr_tail"]
    assert not r["memory_error"], r
    assert r["readings_accepted"] == r["readings_sent"] and not r["delivery_problems"], r
    assert r["samples_day1"] > 100 and r["samples_last_day"] > 100, r
    assert r["growth_bytes"] <= soak.GROWTH_LIMIT, r


@pytest.mark.xfail(strict=True, reason=(
    "the firmware does not fit the issue's 64 K heap: a day needs 144wK with the real aioble; by its "
    "first reading the host gateway's imports keep more than 109 KiB of this 64-bit port's heap (64wK is "
    "128 KiB here), code and names that "
    "a board build with frozen modules or ROMFS would largely keep in flash, which this port cannot show; "
    "tools/heap_profile.py says where (docs/known-limits.md)"))
def test_a_day_runs_in_the_64k_heap_of_the_issue(mosquitto):
    r = soak.soak(days=1, heap="64wK", speed=3000, noise=200, broker_port=mosquitto.port, timeout=90)
    assert r["runs"], soak._why(r)
