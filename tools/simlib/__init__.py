# Host simulator pieces used by tools/sim.py (CPython only).
