#!/usr/bin/env python3
"""Fetch umqtt.simple from the package index by name into .deps/lib/umqtt/ (for the host runtime).

The index's micropython-umqtt.simple is an sdist pip cannot install (no setup.py), so we read the
index's simple page, pick the wanted version's tarball, check its sha256 from the index, and extract
umqtt/simple.py. Boards ship umqtt.simple frozen in their firmware (tools/deploy.py checks).
"""
import hashlib
import io
import os
import re
import sys
import tarfile
import urllib.request

PACKAGE = "micropython-umqtt.simple"
VERSION = "1.3.4"
INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEST = os.path.join(ROOT, ".deps", "lib", "umqtt")


def main():
    target = os.path.join(DEST, "simple.py")
    if os.path.exists(target):
        return 0
    page_url = "%s/%s/" % (INDEX, re.sub(r"[-_.]+", "-", PACKAGE).lower())
    with urllib.request.urlopen(page_url, timeout=60) as r:
        page = r.read().decode()
    want = "%s-%s.tar.gz" % (PACKAGE, VERSION)
    m = re.search(r'href="([^"]*/%s)#sha256=([0-9a-f]{64})"' % re.escape(want), page)
    if not m:
        sys.stderr.write("fetch_umqtt: %s not listed on %s\n" % (want, page_url))
        return 1
    url, sha = m.group(1), m.group(2)
    with urllib.request.urlopen(url, timeout=60) as r:
        blob = r.read()
    if hashlib.sha256(blob).hexdigest() != sha:
        sys.stderr.write("fetch_umqtt: sha256 mismatch for %s\n" % url)
        return 1
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/umqtt/simple.py"))
        code = tar.extractfile(member).read()
    os.makedirs(DEST, exist_ok=True)
    with open(os.path.join(DEST, "__init__.py"), "w") as f:
        f.write("")
    with open(target, "wb") as f:
        f.write(code)
    print("fetched %s %s -> %s" % (PACKAGE, VERSION, os.path.relpath(target, ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
