# The real firmware under the MicroPython unix port, driven by tools/sim.py, against a real mosquitto.
