# CPython only: make the MicroPython-only modules the firmware imports available to pytest.
import os
import sys

# Shared by every sub-folder (see host_tests/README.md); fixtures used by more than one folder live here.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools", "shims"))

import pytest  # noqa: E402

from host_tests.tls_broker import tls_broker  # noqa: E402,F401  (a fixture: pytest finds it by name)


@pytest.fixture(scope="session")
def mosquitto():
    """A real mosquitto on a free loopback port for the whole session."""
    from host_tests.simrun import MOSQUITTO_HINT, brokers
    if not brokers.find_mosquitto():
        pytest.fail(MOSQUITTO_HINT)
    b = brokers.start_mosquitto()
    yield b
    b.stop()


@pytest.fixture
def gateway(tmp_path, mosquitto):
    """A per-test gateway id and config file, so retained topics of other tests never leak in."""
    import json
    import uuid
    gid = "t" + uuid.uuid4().hex[:8]
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"gateway_id": gid}))
    return {"id": gid, "config": str(cfg), "prefix": "nightstand/" + gid}
