# CPython-only unit tests: one module at a time against fakes (no broker, no simulator).
