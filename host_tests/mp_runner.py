# Runs the portable tests under MicroPython (the unix port), with their assertions.
# Usage (from the project root): micropython host_tests/mp_runner.py [module ...]
# Prints one line per failure and a closing "N passed, N failed" line; exit 1 on any failure.
import os
import sys

sys.path.insert(0, ".")
_DIR = "host_tests/portable"


def _modules(argv):
    if argv:
        return argv
    names = [f[:-3] for f in os.listdir(_DIR) if f.startswith("test_") and f.endswith(".py")]
    names.sort()
    return names


def main(argv):
    passed = failed = 0
    for name in _modules(argv):
        mod = __import__("host_tests.portable." + name, None, None, [name])
        for attr in sorted(dir(mod)):
            if not attr.startswith("test_"):
                continue
            fn = getattr(mod, attr)
            try:
                fn()
                passed += 1
                print("PASS", name, attr)
            except Exception as e:  # a failed assert or any crash counts as a failure
                failed += 1
                print("FAIL", name, attr, repr(e))
                sys.print_exception(e)
    print("micropython: %d passed, %d failed" % (passed, failed))
    return failed


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1:]) else 0)
