# Wires the core to the board: one asyncio task per job, each restarted by the supervisor on a crash.
# The alarm path is radio task -> sensor driver -> core -> player; nothing on it touches the network.
import os

import asyncio

from firmware.core import ticks
from firmware.core.gateway import Gateway
from firmware.shell import radio
from firmware.shell.player import Player
from firmware.shell.supervisor import Supervisor
from firmware.shell.queues import open_queue
from firmware.lib.unload import forget as _forget
from firmware.shell.uplink import Uplink

from micropython import const

_TICK_MS = const(1000)         # core judgement period: link silence is judged to the second
_HEALTH_MS = const(60000)      # health topic period
_BOOT_SHOW_MS = const(1000)    # `booting` pattern before the self-test
_SELFTEST_MS = const(3000)     # LED sweep + chirp at boot, so a family sees and hears both work


def _discovery(cfg):
    """A function giving Home Assistant's retained config messages, or None when discovery is off. The
    uplink calls it on each connect: the module and the messages (~1.7 KiB of strings) live only while
    they are sent, not for the whole run."""
    if not cfg["mqtt"]["ha_discovery"]:
        return None

    def build():
        from firmware.core import ha_discovery
        _forget("firmware.core.ha_discovery")   # the generator keeps what it needs while it runs
        return ha_discovery.messages(cfg)
    return build


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass  # exists


class App:
    def __init__(self, board, cfg, cfg_error=None):
        self.board = board
        self.clock = board.clock
        self.cfg = cfg
        now = self.clock.ticks_ms()
        self.gw = Gateway(cfg, now)
        self.player = Player(board, self.clock)
        queue, queue_err = open_queue(board.data_dir)
        self.uplink = Uplink(cfg, board, self.clock, queue, discovery=_discovery(cfg))
        # None when every source is on the network (a `sources` list without broadcast/cgms)
        self.receiver = radio.make_receiver(cfg, board.data_dir) if cfg["sensor"] is not None else None
        # With a secret, the command handler (HMAC, verifier, persisted counter) is ready at boot. Without
        # one every command is refused ("disabled"): that code (~7 KiB of heap) loads on the first
        # command that arrives, in the tick task, never on the alarm path.
        self.commands = None
        if cfg["commands"]["secret"]:
            self.command_handler()
        self.t0 = now
        self.restarts = 0
        self.sup = Supervisor(self)  # restarts, watchdog, crash log, self-checks
        if cfg_error is not None:
            self.gw.set_fault(now, "config", str(cfg_error))  # the gateway emits the fault event
        if queue_err is not None:
            self.gw.set_fault(now, "queue", queue_err)  # the gateway emits the fault event
        self.wifi_up = None

    def now(self):
        return self.clock.ticks_ms()

    def command_handler(self):
        if self.commands is None:
            from firmware.shell.commands_task import CommandHandler
            self.commands = CommandHandler(self.cfg, self.board.data_dir, self.clock)
            if self.commands.error is not None:  # fail closed, and say which file
                self.gw.set_fault(self.now(), "commands", self.commands.error)
        return self.commands

    def flush(self):
        """Carry out the core's effects, in order. Never blocks."""
        for eff in self.gw.drain():
            kind = eff[0]
            if kind == "event":
                self.board.emit(eff[1])
            elif kind == "pattern":
                self.player.set(eff[1], eff[2])
            else:
                self.uplink.send(eff[1], eff[2], eff[3], eff[4])

    # ---- tasks --------------------------------------------------------------------------------
    async def tick_task(self):
        while True:
            self.sup.checkin("tick")
            now = self.now()
            up = self.board.wifi.isconnected()
            if up != self.wifi_up:
                self.wifi_up = up
                self.gw.on_wifi(now, up)
            for item in self.uplink.news():
                if item[0] == "cmd":
                    audit = self.command_handler().handle(self.gw, now, item[1], item[2])
                    self.uplink.send("audit", audit, 1, False)
                elif item[0] in ("flash_fail", "flash_ok"):
                    self.gw.set_fault(now, "flash", item[1])  # None clears it
                elif item[0] in ("queue", "down", "cmd_flood"):
                    self.board.emit({"event": "uplink", "what": item[0], "why": item[1]})
            rx = self.uplink.rx_ticks
            if rx is not None:
                self.gw.on_cloud_ok(rx)
            self.gw.tick(now, self.clock.wall_ms())
            self.player.led_percent = self.gw.alarms.led_percent()
            self.flush()
            await self.clock.sleep_ms(_TICK_MS)

    async def button_task(self):
        while True:
            kind = await self.board.button()
            self.gw.on_press(self.now(), kind)
            self.flush()

    async def health_task(self):
        uptime_ms, last = 0, self.t0
        while True:
            await self.clock.sleep_ms(_HEALTH_MS)
            # summed one period at a time: a single ticks.diff from boot goes negative after 6.2 days
            now = self.now()
            uptime_ms += ticks.diff(now, last)
            last = now
            self.uplink.send("health", {
                "uptime_s": uptime_ms // 1000,
                "heap_free": self.board.heap_free(),
                "rssi": self.board.wifi.rssi(),
                "queue_depth": self.uplink.depth(),
                "dropped": self.uplink.lost(),
                "resets": self.restarts,
                "cmd_dropped": self.uplink.cmd_dropped,      # flood, rate limit and oversized
                "cmd_oversized": self.uplink.cmd_oversized,  # of which discarded unread
                "uplink_crashes": self.uplink.crashes,
                "ha_skipped": self.uplink.ha_skipped,        # discovery cut short by a full heap
                # each source's state, the age of its newest reading and its path (docs/sources.md)
                "sources": self.gw.merge.snapshot(now),
            }, 0, False)

    def supervise(self, name, make):
        """Run a task; a crash shows `fault`, logs the traceback, and restarts it with backoff."""
        return self.sup.supervise(name, make)

    async def boot(self):
        self.gw.booting(self.now(), _BOOT_SHOW_MS)
        self.flush()
        await self.clock.sleep_ms(_BOOT_SHOW_MS)
        self.gw.selftest(self.now(), _SELFTEST_MS)
        self.flush()

    async def run(self):
        tasks = [asyncio.create_task(self.supervise("player", self.player.run))]
        await self.boot()
        if self.receiver is not None:
            view = self.sup.radio_app()  # its BLE scans check in with the watchdog
            tasks.append(asyncio.create_task(self.supervise("radio", lambda: radio.scan_task(view))))
        tasks.append(asyncio.create_task(self.supervise("tick", self.tick_task)))
        tasks.append(asyncio.create_task(self.supervise("button", self.button_task)))
        tasks.append(asyncio.create_task(self.supervise("health", self.health_task)))
        if any(s["kind"] in ("phone", "nightscout") for s in self.cfg.get("sources") or ()):
            # network sources: polled beside the alarm path, each its own task (http_source.py)
            from firmware.shell import http_source
            for name, make in http_source.tasks(self):
                tasks.append(asyncio.create_task(self.supervise(name, make)))
        self.uplink.start()
        await self.sup.monitor()  # feeds the watchdog; returns when the (host) board stops
        self.uplink.running = False


def _load_config(data_dir):
    """(cfg, error) from config_store. The validator and its schema tables are only needed to load the
    config, so they are dropped again (a later load, e.g. the ESP32 board reading its Wi-Fi networks,
    imports them afresh). A function of its own, so no frame that lives on keeps the module."""
    from firmware.shell import config_store
    out = config_store.load(data_dir)
    for name in config_store.BOOT_ONLY:
        _forget(name)
    return out


async def main(board):
    await board.start()
    _mkdir(board.data_dir)
    cfg, err = _load_config(board.data_dir)
    if err is not None:
        print("config:", err)
    if hasattr(board, "set_networks"):
        board.set_networks(cfg["wifi"]["networks"])   # the board keeps Wi-Fi up; it reads no config
    app = App(board, cfg, err)
    await app.run()


def run():
    from firmware.hal.loader import load_board
    asyncio.run(main(load_board()))
