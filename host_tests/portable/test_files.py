# The one atomic file write of the shell (firmware/shell/files.py): what survives on flash.
# Runs under pytest and under `micropython host_tests/mp_runner.py test_files`.
import os

from firmware.shell.files import write_atomic
from host_tests.portable.scratch import exists, fresh

_DIR = "build/test_files"


def _read(path):
    with open(path) as f:
        return f.read()


def test_write_replaces_the_file_and_leaves_no_temp_file():
    path = fresh(_DIR, "state.json")
    write_atomic(path, '{"n": 1}')
    write_atomic(path, '{"n": 2}')
    assert _read(path) == '{"n": 2}'
    assert not exists(path + ".tmp")


def test_a_write_that_fails_raises_and_keeps_the_old_file():
    path = fresh(_DIR, "kept.json")
    write_atomic(path, '{"n": 1}')
    tmp = fresh(_DIR, "kept.json.tmp")
    os.mkdir(tmp)              # the temp file cannot be opened: a full or read-only flash looks alike
    try:
        raised = False
        try:
            write_atomic(path, '{"n": 2}')
        except OSError:
            raised = True
        assert raised
        assert _read(path) == '{"n": 1}'
    finally:
        os.rmdir(tmp)
