# Nightstand firmware package. Pure core in firmware.core and firmware.sensor,
# asyncio shell in firmware.shell, one adapter per board kind in firmware.hal.

# The one `const` shim. Every firmware module writes `from micropython import const`, the MicroPython
# idiom. MicroPython's parser folds `_X = const(1)` by the name `const` alone (measured with the unix
# port and mpy-cross 1.29: folded with the micropython import, with an import from another module, and
# with no import at all), so the import buys nothing on a board but costs nothing either; a shared
# firmware module instead would hold about 300 bytes of heap for the whole night. CPython (tests and
# host tools) has no `micropython` module: this package, imported before any firmware module, gives
# it one whose const() returns its argument. Never runs on a board.
try:
    import micropython  # noqa: F401
except ImportError:
    import sys
    import types

    def _const(x):
        return x

    _shim = types.ModuleType("micropython")
    _shim.const = _const  # type: ignore[attr-defined]
    sys.modules["micropython"] = _shim
    del sys, types, _const, _shim
