"""setup.py lists every package under argus/ (a non-editable install ships only what it lists)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_setup_py():
    text = (ROOT / "setup.py").read_text()
    listed = set(re.findall(r'"(argus(?:\.[a-z0-9_]+)*)"', text.split("packages=", 1)[1].split("]", 1)[0]))
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "argus").rglob("__init__.py")}
    assert found - listed == set()
