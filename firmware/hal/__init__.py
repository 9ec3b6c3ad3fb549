# Board adapters: esp32 (machine/network/aioble) and host (virtual radio, pins, Wi-Fi).
