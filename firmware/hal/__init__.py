# Board adapters. One module per board kind: firmware.hal.host (simulator) and firmware.hal.esp32.
# They import firmware.core and firmware.lib, never firmware.shell: the app (the composition root) hands
# them what they need from the config (board.set_networks(), where a board has it).
#
# A board object offers exactly this surface to the shell (keep it small; add here first):
#   board.name                 board config "name"
#   board.clock                Clock: ticks_ms(), sleep_ms(ms) (awaitable), wall_ms() -> epoch ms or None
#   board.ble                  the aioble module itself (micropython-lib: core, central, client, security),
#                              opened by firmware/hal/ble.py on both boards; on the host it runs over the
#                              virtual `bluetooth` module in tools/virtual_hw/ (host only)
#   board.led.show(rgb)        rgb = (r, g, b) 0..255, or None/(0,0,0) = dark.
#                              A plain LED lights for any non-dark colour.
#   board.buzzer.tone(hz)      hz = 0 silences; the piezo kind decides how it is driven
#   async board.button()       -> "short" | "long"  (waits for the next press)
#   board.wifi                 isconnected(), async connect(), rssi()
#   board.emit(event)          one event-log dict (host: to the simulator; esp32: console line)
#   async board.start()        before anything else: host waits for the simulator's scenario time 0,
#                              esp32 starts keeping Wi-Fi and the clock in the background
#   board.stopping             True when the gateway should end (host: the simulator said quit)
#   board.data_dir             writable directory for counters, outage queue, logs ("data")
#   board.heap_free()          bytes free after gc, or None
#   board.watchdog(timeout_ms) -> object with feed(); the host's never resets, it reports `expired`
#   board.reset()              hard reset (host: exit the process)
