# Loopback TCP proxy between the gateway and the broker, so broker_down / broker_hang / wifi_down act on
# the gateway's link only: other clients of the broker stay connected and see what the gateway does.
#   up:   forward both ways
#   down: refuse new connections (listener closed) and cut the existing ones
#   hang: accept TCP but never answer; existing connections stop forwarding both ways
#   halfopen: a path that died silently (a NAT or AP dropped its state): every byte either way is
#             discarded, no FIN or RST is passed on, new connections are accepted and never answered,
#             and going back to `up` does not cut them: only the gateway's own keepalive can notice
import asyncio


class BrokerProxy:
    def __init__(self, upstream_host, upstream_port):
        self.up_host, self.up_port = upstream_host, upstream_port
        self.port = None
        self.mode = "up"
        self.server = None
        self.conns = set()    # (client_writer, upstream_writer or None)
        self.accepted = 0
        self.dead = set()     # writers of half-open connections: their bytes and their FIN are dropped

    async def start(self, port=0):
        self.server = await asyncio.start_server(self._on_client, "127.0.0.1", port or self.port or 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _stop_listening(self):
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    def _cut_all(self):
        for cw, uw in list(self.conns):
            for w in (cw, uw):
                if w is not None:
                    try:
                        w.transport.abort()
                    except Exception:
                        pass
        self.conns.clear()

    async def set_mode(self, mode):
        if mode == self.mode:
            return
        old, self.mode = self.mode, mode
        if mode == "halfopen":
            for cw, uw in self.conns:
                self.dead.update(w for w in (cw, uw) if w is not None)
            if self.server is None:
                await self.start()
        if mode == "down":
            await self._stop_listening()
            self._cut_all()
        elif mode == "hang":
            if self.server is None:
                await self.start()
        elif mode == "up":
            # hung connections never recover by themselves: cut them so the gateway reconnects
            if old == "hang":
                self._cut_all()
            if self.server is None:
                await self.start()

    async def _on_client(self, reader, writer):
        self.accepted += 1
        if self.mode in ("hang", "halfopen"):
            entry = (writer, None)
            self.conns.add(entry)
            try:
                while await reader.read(4096):
                    pass  # swallow: a hung broker answers nothing
            except Exception:
                pass
            self.conns.discard(entry)
            return
        try:
            ur, uw = await asyncio.open_connection(self.up_host, self.up_port)
        except OSError:
            writer.transport.abort()
            return
        entry = (writer, uw)
        self.conns.add(entry)
        await asyncio.gather(self._pipe(reader, uw), self._pipe(ur, writer), return_exceptions=True)
        self.conns.discard(entry)
        self.dead.difference_update((writer, uw))
        for w in (writer, uw):
            try:
                w.close()
            except Exception:
                pass

    async def _pipe(self, reader, writer):
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                while self.mode == "hang":
                    await asyncio.sleep(0.05)  # hold bytes: the connection goes quiet both ways
                if writer in self.dead:
                    continue  # half-open: the bytes vanish on the way
                writer.write(data)
                await writer.drain()
        finally:
            if writer not in self.dead:  # half-open: the FIN is lost too, the far side stays open
                try:
                    writer.close()
                except Exception:
                    pass

    async def close(self):
        await self._stop_listening()
        self._cut_all()
