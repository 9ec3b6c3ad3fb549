# Scratch files for the portable tests (CPython and the MicroPython unix port alike: os only).
import os


def fresh(folder, name):
    """folder/name, with folder made and any earlier file of that name removed."""
    for d in ("build", folder):
        try:
            os.mkdir(d)
        except OSError:
            pass
    path = folder + "/" + name
    try:
        os.remove(path)
    except OSError:
        pass
    return path


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False
