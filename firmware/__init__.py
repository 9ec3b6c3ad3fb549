# Nightstand firmware package. Pure core in firmware.core and firmware.sensor,
# asyncio shell in firmware.shell, one adapter per board kind in firmware.hal.
