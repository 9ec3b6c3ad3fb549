# boot.py + main.py as a board runs them (same globals), with fake `machine`: safe mode skips the
# gateway and so never starts the watchdog; a normal boot starts the gateway.
import os
import shutil
import sys
import types
from unittest import mock

import pytest

from host_tests.paths import ROOT


def _src(name):
    with open(os.path.join(ROOT, name)) as f:
        return compile(f.read(), name, "exec")


@pytest.fixture
def board(tmp_path, monkeypatch):
    """A board's filesystem (board.json of the DevKitC: BOOT button GPIO0, active low) and fake
    hardware; returns a function that powers it on with the button held or not."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(os.path.join(ROOT, "board_configs", "esp32_devkitc.json"), "board.json")
    machine = mock.MagicMock(name="machine")
    app = types.ModuleType("firmware.shell.app")
    app.run = mock.MagicMock(name="app.run")

    def power_on(held=False):
        machine.reset_mock()
        app.run.reset_mock()
        machine.Pin.return_value.value.return_value = 0 if held else 1  # active low
        g = {"__name__": "__main__"}
        with mock.patch.dict(sys.modules, {"machine": machine, "firmware.shell.app": app}), \
                mock.patch("time.sleep_ms", create=True, new=lambda ms: None):
            import firmware.shell
            with mock.patch.object(firmware.shell, "app", app, create=True):
                exec(_src("boot.py"), g)
                exec(_src("main.py"), g)
        return g, app.run.called, machine.WDT.called

    return power_on


def test_normal_boot_starts_the_gateway(board):
    g, started, _ = board(held=False)
    assert g["SAFE_MODE"] is False and started


def test_button_held_at_power_on_is_safe_mode_without_gateway_or_watchdog(board, capsys):
    g, started, wdt = board(held=True)
    assert g["SAFE_MODE"] is True
    assert not started and not wdt
    assert "SAFE MODE" in capsys.readouterr().out


def test_safe_mode_file(board, tmp_path):
    (tmp_path / "safe_mode").write_text("")
    g, started, wdt = board(held=False)
    assert g["SAFE_MODE"] is True and not started and not wdt


def test_a_corrupt_board_json_still_boots_and_the_file_still_works(board, tmp_path, capsys):
    (tmp_path / "board.json").write_text("{not json")
    g, started, _ = board(held=True)  # the button cannot be read without a board config
    assert g["SAFE_MODE"] is False and started
    assert "board.json unusable" in capsys.readouterr().out
    (tmp_path / "safe_mode").write_text("")
    g, started, _ = board(held=False)
    assert g["SAFE_MODE"] is True and not started


def test_half_copied_firmware_is_safe_mode(board):
    with mock.patch.dict(sys.modules, {"firmware.hal.esp32": None}):  # import fails
        g, started, wdt = board(held=False)
    assert g["SAFE_MODE"] is True and not started and not wdt
