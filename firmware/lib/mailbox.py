# A bounded single-consumer queue for asyncio tasks (MicroPython's asyncio has no Queue).
# A full mailbox drops the oldest item and counts it: a radio flood must never grow the heap.
import asyncio


class Mailbox:
    def __init__(self, size):
        self.size = size
        self.items = []
        self.dropped = 0
        self._ready = asyncio.Event()

    def put(self, item):
        if len(self.items) >= self.size:
            self.items.pop(0)
            self.dropped += 1
        self.items.append(item)
        self._ready.set()

    async def get(self):
        while not self.items:
            self._ready.clear()
            await self._ready.wait()
        return self.items.pop(0)

    async def get_ms(self, timeout_ms):
        """The next item, or None after timeout_ms of real time (every wait has a timeout)."""
        if not self.items:
            self._ready.clear()
            try:
                await asyncio.wait_for_ms(self._ready.wait(), timeout_ms)
            except asyncio.TimeoutError:
                return None
        return self.items.pop(0) if self.items else None
