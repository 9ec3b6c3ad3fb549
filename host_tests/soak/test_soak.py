# Small-heap soak, short CI variant (issue 8). The full run is `python tools/soak.py --bisect` (seven
# simulated days, then the smallest heap that runs), called by `make bench` and `make soak`.
import os
import sys

import pytest

from host_tests.simrun import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import soak

# A heap the firmware runs in today with room to spare. With the real aioble (.deps/lib) over the host's
# virtual BLE controller (tools/virtual_hw/bluetooth.py, ~14 KiB of host-only module that a board's
# NimBLE keeps outside the Python heap), a day holds at 112wK and not at 108wK (it held at 84wK on the
# aioble stand-ins; docs/known-limits.md; tools/soak.py --bisect finds the smallest). 132wK keeps 20 K
# words of margin for a loaded CI machine and still fails if the heap the gateway keeps grows by a sixth.
ROOMY = "132wK"


def test_two_days_with_advert_noise_hold_the_heap_flat(mosquitto):
    r = soak.soak(days=2, heap=ROOMY, speed=3000, noise=200, broker_port=mosquitto.port)
    assert r["rc"] == 0, r["stderr_tail"]
    assert not r["memory_error"], r
    assert r["readings_accepted"] == r["readings_sent"] and not r["delivery_problems"], r
    assert r["samples_day1"] > 100 and r["samples_last_day"] > 100, r
    assert r["growth_bytes"] <= soak.GROWTH_LIMIT, r


@pytest.mark.xfail(strict=True, reason=(
    "the firmware does not fit the issue's 64 K heap: a day needs 112wK with the real aioble; by its "
    "first reading the host gateway's imports keep more than 109 KiB of this 64-bit port's heap (64wK is "
    "128 KiB here), code and names that "
    "a board build with frozen modules or ROMFS would largely keep in flash, which this port cannot show; "
    "tools/heap_profile.py says where (docs/known-limits.md)"))
def test_a_day_runs_in_the_64k_heap_of_the_issue(mosquitto):
    r = soak.soak(days=1, heap="64wK", speed=3000, noise=200, broker_port=mosquitto.port, timeout=90)
    assert r["runs"], soak._why(r)
