# The BLE stack as both boards open it: micropython-lib's aioble (the parts tools/deploy.py installs on a
# board and tools/install_deps.py in .deps/lib for the host: core, central, client, security) over the
# low-level `bluetooth` module (NimBLE on the ESP32, tools/virtual_hw/bluetooth.py on the host).
# A module of its own so the host board opens it exactly as the ESP32 adapter does without importing
# the ESP32 adapter's drivers.
import gc


def open_ble(data_dir):
    """aioble, with bonding keys kept in the data dir: aioble's default is ble_secrets.json in the
    working directory, and its stack start (ensure_active) reads them from whatever path was given first."""
    # Once, before ~15 KiB of imports: boot garbage that the collector run from deep inside an import
    # cannot free (stale pointers on the stack keep it) made a host heap that fits fail right here.
    gc.collect()
    import aioble
    try:
        from aioble import security
        security.load_secrets(data_dir + "/ble_secrets.json")
    except ImportError:
        pass   # a build without aioble-security: no bonding, nothing to keep
    return aioble
