# The docs as a reader meets them: every path they (and the code's comments) point at exists, every link
# and section anchor resolves, every config key the gateway or a board file accepts is in the one key table
# of docs/configuration.md, and the README stays a front door (under 200 lines).
import ast
import copy
import glob
import json
import os
import re
import sys

import pytest


def _root():
    d = os.path.dirname(os.path.abspath(__file__))
    while not os.path.isdir(os.path.join(d, "firmware")):   # works from any host_tests sub-folder
        d = os.path.dirname(d)
    return d


ROOT = _root()
sys.path.insert(0, ROOT)
CONFIG_DOC = os.path.join(ROOT, "docs", "configuration.md")
SKIP_DIRS = {".venv", ".deps", ".git", "build", "__pycache__", ".pytest_cache", ".hypothesis", "node_modules"}

# Something that reads as a path inside this repository: a top-level folder of ours, then a path.
_PATH = re.compile(r"(?<![\w./~-])((?:firmware|tools|host_tests|docs|board_configs)/[\w./*-]*)")
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$")


def _files(exts):
    for d, dirs, files in os.walk(ROOT):
        dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not x.startswith(".")]
        for f in files:
            if f.endswith(exts):
                yield os.path.join(d, f)


def _rel(path):
    return os.path.relpath(path, ROOT)


def _comments_and_docstrings(path):
    """The prose of a Python file: its # comments and its docstrings (code strings are not prose)."""
    with open(path, encoding="utf-8") as f:
        src = f.read()
    out = []
    for n, line in enumerate(src.split("\n"), 1):
        i = line.find("#")
        if i >= 0:
            out.append((n, line[i:]))
    try:
        tree = ast.parse(src)
    except SyntaxError:       # MicroPython-only syntax: comments are still checked
        return out
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                line = node.body[0].lineno
                out += [(line + k, t) for k, t in enumerate(doc.split("\n"))]
    return out


def _exists(token):
    if "<" in token or "..." in token or "…" in token:
        return True          # a pattern for the reader (`<name>`), not a path
    token = token.rstrip(".,;:)`'\"")
    if not token:
        return True
    if "*" in token:
        return bool(glob.glob(os.path.join(ROOT, token)))
    return os.path.exists(os.path.join(ROOT, token))


def _dangling_paths():
    bad = []
    for path in _files((".md",)):
        with open(path, encoding="utf-8") as f:
            lines = list(enumerate(f.read().split("\n"), 1))
        for n, line in lines:
            for m in _PATH.finditer(line):
                if not _exists(m.group(1)):
                    bad.append("%s:%d: %s" % (_rel(path), n, m.group(1)))
    for path in _files((".py",)):
        for n, text in _comments_and_docstrings(path):
            for m in _PATH.finditer(text):
                if not _exists(m.group(1)):
                    bad.append("%s:%d: %s" % (_rel(path), n, m.group(1)))
    return bad


def test_no_doc_or_comment_points_at_a_path_that_does_not_exist():
    bad = _dangling_paths()
    assert not bad, "paths that do not exist:\n" + "\n".join(bad)


def test_the_old_readme_split_left_no_dangling_reference():
    # The README was split into docs/; "README finding N" and docs/readme/... pointed nowhere.
    bad = []
    for path in list(_files((".py",))) + list(_files((".md",))):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if re.search(r"docs/readme/|README\W+finding|CONTRACTS\.md|CONTRACTS §", line):
                    bad.append("%s:%d: %s" % (_rel(path), n, line.strip()))
    bad = [b for b in bad if not b.startswith(_rel(os.path.abspath(__file__)))]
    assert not bad, "\n".join(bad)


def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def _anchors(md_path):
    seen, out = {}, set()
    in_code = False
    with open(md_path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                in_code = not in_code
            m = None if in_code else _HEADING.match(line)
            if m:
                s = _slug(m.group(1))
                k = seen.get(s, 0)
                seen[s] = k + 1
                out.add(s if k == 0 else "%s-%d" % (s, k))
    return out


def test_every_markdown_link_and_anchor_resolves():
    bad = []
    for path in _files((".md",)):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for m in _LINK.finditer(text):
            target = m.group(1)
            if re.match(r"[a-z]+:", target):      # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if not os.path.exists(dest):
                bad.append("%s: link to %s: no such file" % (_rel(path), target))
            elif anchor and dest.endswith(".md") and anchor not in _anchors(dest):
                bad.append("%s: link to %s: no such section" % (_rel(path), target))
    assert not bad, "\n".join(bad)


def test_the_readme_is_a_front_door_under_200_lines():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        n = len(f.read().rstrip("\n").split("\n"))
    assert n < 200, "README.md has %d lines; move the topic to docs/" % n


def test_the_readme_links_every_docs_file():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    missing = [_rel(p) for p in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
               if "(%s)" % _rel(p).replace(os.sep, "/") not in readme]
    assert not missing, "docs files the README does not link: %s" % missing


# ---- the key table ---------------------------------------------------------------------------------
def _documented_keys():
    """Backticked keys in the first column of the tables of docs/configuration.md."""
    keys = set()
    with open(CONFIG_DOC, encoding="utf-8") as f:
        for line in f:
            if line.startswith("|") and not line.startswith("|---"):
                first = line.split("|")[1]
                keys.update(re.findall(r"`([A-Za-z_][\w.]*)`", first))
    return keys


def _schema_keys(schema, prefix=""):
    out = set()
    for k, v in schema.items():
        if isinstance(v, dict):
            out |= _schema_keys(v, prefix + k + ".")
        else:
            out.add(prefix + k)
    return out


def _gateway_keys():
    from firmware.core import config
    return _schema_keys(config.SCHEMA)


def _board_keys():
    """Keys a board file may carry, found by asking the board checker: a name is accepted unless the
    checker refuses it as an unknown key. Candidates are the names the checker's source mentions."""
    from firmware.core import board
    with open(os.path.join(ROOT, "firmware", "core", "board.py"), encoding="utf-8") as f:
        names = {n.value for n in ast.walk(ast.parse(f.read()))
                 if isinstance(n, ast.Constant) and isinstance(n.value, str)
                 and re.fullmatch(r"[a-z_]+", n.value)}
    with open(os.path.join(ROOT, "board_configs", "esp32_devkitc.json"), encoding="utf-8") as f:
        base = json.load(f)
    board.build(copy.deepcopy(base))      # the probe starts from a board file that is valid

    def accepted(section, name):
        raw = copy.deepcopy(base)
        (raw[section] if section else raw)[name] = 1
        try:
            board.build(raw)
        except Exception as e:             # any refusal but "unknown key" means the name is known
            return not ("unknown key" in str(e) and ((section + ".") if section else "") + name in str(e))
        return True

    sections = [k for k, v in base.items() if isinstance(v, dict)]
    keys = set()
    for name in names:
        if name not in sections and accepted(None, name):
            keys.add(name)
    for section in sections:
        for name in names:
            if accepted(section, name):
                keys.add(section + "." + name)
    return keys


def test_every_gateway_config_key_is_in_the_docs_key_table():
    missing = sorted(_gateway_keys() - _documented_keys())
    assert not missing, "config keys the schema accepts but docs/configuration.md does not list: %s" % missing


def test_every_board_file_key_is_in_the_docs_key_table():
    missing = sorted(_board_keys() - _documented_keys())
    assert not missing, "board-file keys the checker accepts but docs/configuration.md does not list: %s" % missing


def test_the_key_table_lists_no_key_that_does_not_exist():
    documented = {k for k in _documented_keys() if "." in k or k in ("gateway_id",)}
    gateway, boards = _gateway_keys(), _board_keys()
    sections = {k.split(".")[0] for k in gateway}
    stale = sorted(k for k in documented if k not in gateway and k not in boards
                   and (k.split(".")[0] in sections or k.split(".")[0] in ("led", "buzzer", "button")))
    assert not stale, "docs/configuration.md lists keys nothing accepts: %s" % stale


@pytest.mark.parametrize("bad", ["firmware/core/no_such_module.py", "docs/readme/alarms.md"])
def test_the_path_check_catches_a_dangling_path(bad):
    # The check itself must be able to fail: a made-up path is reported.
    assert not _exists(bad)
    assert _PATH.search("see %s for more" % bad).group(1) == bad


def test_every_source_kind_key_is_in_the_docs_key_table():
    # sources[] entries are checked per kind (firmware/core/sources_schema.py), not by SCHEMA: each
    # kind's keys are listed as `kind.key` in docs/configuration.md's source key table.
    from firmware.core import sources_schema
    with open(CONFIG_DOC, encoding="utf-8") as f:
        text = f.read()
    missing = ["%s.%s" % (kind, k) for kind, spec in sorted(sources_schema.KINDS.items()) for k in spec
               if "`%s.%s`" % (kind, k) not in text]
    assert not missing, "source keys docs/configuration.md does not list: %s" % missing
