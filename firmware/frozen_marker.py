# Present only when Nightstand is frozen into the firmware (firmware/manifest.py freezes it; tools/deploy.py
# never copies it to a board's filesystem). `make deploy` imports it from the frozen modules alone
# (sys.path = ['.frozen']) to learn that the board already carries the gateway in flash, so it copies
# only the board and gateway configs, not the .mpy firmware that would need far more heap.
FROZEN = True
