# The layers read as the plan says (issue 13): core and sensor are pure (nothing from shell or hal), hal
# only adapts hardware (nothing from shell: it gets what it needs from the composition root), and no
# firmware module imports itself back through others. Read from the source with ast, so a forbidden
# import fails here even inside a function that no other test happens to call.
import ast
import os

import pytest

from host_tests.paths import ROOT

FW = os.path.join(ROOT, "firmware")


def _modules():
    out = {}
    for dirpath, _, files in os.walk(FW):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                if name.endswith(".__init__"):
                    name = name[:-9]
                out[name] = path
    return out


MODULES = _modules()


def _imports(path, top_level_only):
    """firmware modules imported by the file: every import, or only those run when it is imported."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    nodes = []
    if top_level_only:
        todo = list(tree.body)
        while todo:                      # module level, including try/except and if blocks
            n = todo.pop()
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            nodes.append(n)
            for field in ("body", "orelse", "finalbody", "handlers"):
                todo.extend(getattr(n, field, []))
    else:
        nodes = list(ast.walk(tree))
    found = set()
    for n in nodes:
        if isinstance(n, ast.Import):
            names = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            # `from firmware.shell import clock` imports the module firmware.shell.clock
            names = [n.module + "." + a.name if n.module + "." + a.name in MODULES else n.module
                     for a in n.names]
        else:
            continue
        found.update(m for m in names if m.startswith("firmware"))
    return found


def _violations(layer, forbidden):
    bad = []
    for name, path in sorted(MODULES.items()):
        if name.startswith("firmware." + layer + ".") or name == "firmware." + layer:
            for m in sorted(_imports(path, False)):
                if any(m == "firmware." + f or m.startswith("firmware." + f + ".") for f in forbidden):
                    bad.append("%s imports %s" % (name, m))
    return bad


def test_the_scan_sees_the_firmware():
    assert "firmware.core.alarms" in MODULES and "firmware.shell.app" in MODULES
    assert "firmware.core.night" in _imports(MODULES["firmware.core.alarms"], True)


@pytest.mark.parametrize("layer", ["core", "sensor"])
def test_pure_layers_import_nothing_from_shell_or_hal(layer):
    assert _violations(layer, ("shell", "hal")) == []


def test_hal_imports_nothing_from_shell():
    assert _violations("hal", ("shell",)) == []


def _cycles(top_level_only):
    graph = {name: _imports(path, top_level_only) & set(MODULES) for name, path in MODULES.items()}
    cycles = []
    state = {}

    def visit(n, stack):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycles.append(" -> ".join(stack[stack.index(m):] + [m]))
            elif m not in state:
                visit(m, stack)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])
    return cycles


def test_no_import_cycle_at_module_level():
    assert _cycles(True) == []


def test_no_import_cycle_even_through_imports_inside_functions():
    assert _cycles(False) == []
