# Pure core: no machine/network/bluetooth/socket/file imports; time is passed in as ticks (ms).
