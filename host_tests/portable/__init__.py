# Portable tests: plain test_* functions with assert, no pytest features, so that
# pytest runs them on CPython and host_tests/mp_runner.py runs them on the unix port.
