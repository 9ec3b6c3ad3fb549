# Where things are, for tests in any sub-folder of host_tests/ (CPython only).
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools")
VECTORS = os.path.join(ROOT, "host_tests", "vectors")
