# What the fake aioble of the central tests (host_tests/unit/test_cgms_central.py, test_g6_central.py)
# share: aioble's exception types and bluetooth.UUID's equality, as the centrals rely on them.


class DeviceDisconnectedError(Exception):
    pass


class GattError(Exception):
    """aioble.GattError: the ATT status is in `_status`."""

    def __init__(self, status):
        super().__init__(status)
        self._status = status


class UUID:
    """bluetooth.UUID: equal when the value is (a 128-bit string compares case-insensitively)."""

    def __init__(self, v):
        self.v = v.lower() if isinstance(v, str) else v

    def __eq__(self, o):
        return isinstance(o, UUID) and o.v == self.v

    def __hash__(self):
        return hash(self.v)


class LinkState:
    """The part of aioble.DeviceConnection both fakes share: a link that is up until dropped, and
    DeviceDisconnectedError from any operation after that."""

    def __init__(self):
        import asyncio
        self.gone = asyncio.Event()
        self.encrypted = False

    def is_connected(self):
        return not self.gone.is_set()

    def check(self):
        if self.gone.is_set():
            raise DeviceDisconnectedError
