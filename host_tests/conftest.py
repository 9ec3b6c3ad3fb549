# CPython only: make the MicroPython-only modules the firmware imports available to pytest.
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(_HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(_HERE, "shims"))
