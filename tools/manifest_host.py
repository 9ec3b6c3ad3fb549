# Freeze manifest of the host board (tools/build_ports.py builds the 32-bit unix port with it): the same
# firmware a maker freezes into an ESP32 (firmware/manifest.py), the unix port's own frozen modules
# (asyncio, ...), and what only the simulator's board needs. Run by MicroPython's manifestfile.py.
include("$(PORT_DIR)/variants/standard/manifest.py")
include("../firmware/manifest.py", board_base=False)

# Host-only: the simulator's board, and the virtual hardware below MicroPython's own module boundary
# (tools/virtual_hw: bluetooth, machine, neopixel, socket), frozen as top-level modules as a board's
# firmware has its own. One list of what only the host runs.
HOST_ONLY = (
    ("firmware", ("hal/host.py",), ".."),
)
VIRTUAL_HW = ("bluetooth.py", "machine.py", "neopixel.py", "network.py", "ntptime.py", "socket.py")
for _pkg, _files, _base in HOST_ONLY:
    package(_pkg, files=_files, base_path=_base)
for _name in VIRTUAL_HW:
    module(_name, base_path="virtual_hw")
