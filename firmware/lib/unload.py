# Dropping a module that is no longer needed, so gc can take its code back (heap on a board).
import sys


def forget(name):
    """Drop a module so gc can take its code back (a later import loads it afresh)."""
    sys.modules.pop(name, None)
    pkg, _, attr = name.rpartition(".")
    parent = sys.modules.get(pkg)
    if parent is not None and attr in parent.__dict__:
        delattr(parent, attr)
