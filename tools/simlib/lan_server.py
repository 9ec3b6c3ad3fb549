# Loopback stand-ins for the network sources (docs/sources.md): the phone's web service
# (xDrip+ / Juggluco / GlucoDataHandler `GET /sgv.json`) and a Nightscout (`GET /api/v1/entries/sgv.json`).
# They serve the readings the trace has played so far, stamped in the simulation's wall time, with the
# `Date` header the firmware ages them by, and act out the trace events:
#   up     answers (what it has, newest first)
#   down   the port is closed: connection refused
#   hang   accepts the connection, reads the request, never answers
#   stale  answers, but only with what it had when it went stale (the phone lost its sensor)
import asyncio
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from firmware.sensor.lan_entries import http_date  # the firmware's own date format

MODES = ("up", "down", "hang", "stale")
_DIRECTIONS = ((-3.0, "DoubleDown"), (-2.0, "SingleDown"), (-1.0, "FortyFiveDown"), (1.0, "Flat"),
               (2.0, "FortyFiveUp"), (3.0, "SingleUp"))


def _direction(per_min):
    for limit, name in _DIRECTIONS:
        if per_min < limit:
            return name
    return "DoubleUp"


class LanServer:
    def __init__(self, kind, wall_now, secret="", answer_delay_s=0.0):
        """kind: "phone" or "nightscout"; wall_now(): the simulation's epoch ms now."""
        self.kind = kind
        self.wall_now = wall_now
        self.secret = secret
        self.answer_delay_s = answer_delay_s
        self.readings = []      # (date_ms, mgdl), oldest first
        self.frozen = None      # the readings it had when it went stale
        self.mode = "up"
        self.port = 0
        self.server = None
        self.requests = 0
        self.hung = []          # writers of connections it never answers

    async def start(self, port=0):
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port or self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    def add(self, date_ms, mgdl):
        self.readings.append((date_ms, mgdl))

    async def set_mode(self, mode):
        assert mode in MODES, mode
        if mode == "stale" and self.mode != "stale":
            self.frozen = list(self.readings)
        if mode == "down" and self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
            for w in self.hung:
                w.close()
            self.hung = []
        elif mode != "down" and self.server is None:
            await self.start(self.port)  # the same port again, as a phone's app that restarts
        # leaving hang for up/stale: requests it froze on stay unanswered; the box gives up on them
        self.mode = mode

    async def close(self):
        if self.server is not None:
            self.server.close()
        for w in self.hung:
            w.close()

    # ---- one request -------------------------------------------------------------------------
    def _entries(self, now):
        have = self.frozen if self.mode == "stale" else self.readings
        newest = [r for r in have if r[0] <= now][-3:][::-1]
        out = []
        for i, (date, mgdl) in enumerate(newest):
            older = newest[i + 1] if i + 1 < len(newest) else None
            delta = 0.0
            if older is not None and date > older[0]:
                delta = round((mgdl - older[1]) * 300000.0 / (date - older[0]), 3)
            e = {"date": date, "sgv": mgdl, "delta": delta,
                 "direction": _direction(delta / 5) if older is not None else "NONE", "noise": 1}
            if self.kind == "nightscout":
                e.update({"_id": "%024x" % date, "type": "sgv", "device": "xDrip-DexcomG7",
                          "dateString": "2026-01-01T00:00:00.000Z", "sysTime": "2026-01-01T00:00:00.000Z",
                          "utcOffset": 0, "filtered": mgdl * 1000, "unfiltered": mgdl * 1000, "rssi": 100})
            elif i == 0:
                e["units_hint"] = "mgdl"
            out.append(e)
        return out

    def _authorised(self, headers, query):
        if not self.secret:
            return True
        want = hashlib.sha1(self.secret.encode()).hexdigest()
        if headers.get("api-secret", "").lower() == want:
            return True
        return self.kind == "nightscout" and ("token=" + self.secret) in query

    async def _handle(self, reader, writer):
        self.requests += 1
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ConnectionError):
            writer.close()
            return
        if self.mode == "hang":
            self.hung.append(writer)  # never answered; closed when the phone comes back or goes down
            return
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(": ")
            if name:
                headers[name.lower()] = value
        now = self.wall_now()
        if self.answer_delay_s:
            await asyncio.sleep(self.answer_delay_s)
        extra = ""
        if not self._authorised(headers, path):
            # xDrip+: 403 text/plain; Nightscout: 401
            status, ctype = ("403 Forbidden", "text/plain") if self.kind == "phone" else \
                ("401 Unauthorized", "application/json")
            body = b"Authentication failed - check api-secret"
        else:
            entries = self._entries(now)
            status, ctype = "200 OK", "application/json"
            body = json.dumps(entries, separators=(",", ":")).encode()
            if self.kind == "nightscout":
                lm = http_date(entries[0]["date"]) if entries else http_date(now)
                extra = "Last-Modified: %s\r\n" % lm
                if headers.get("if-modified-since") == lm and entries:
                    status, body = "304 Not Modified", b'{"status":304,"message":"Not modified"}'
        proto = "HTTP/1.0" if self.kind == "phone" else "HTTP/1.1"
        out = ("%s %s\r\nDate: %s\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: %s\r\n%s"
               "Content-Length: %d\r\nConnection: close\r\n\r\n" % (proto, status, http_date(now), ctype,
                                                                  extra, len(body))).encode() + body
        try:
            writer.write(out)
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()
