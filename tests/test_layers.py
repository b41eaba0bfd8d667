"""Lower layers never import higher ones (DESIGN.md §2).

The compiled codec (argus.kernels.codec, built from kernels/codec.pyx) belongs to the events layer: it
is the record codec that validation and the log use, and it imports nothing above argus.errors."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Rank of each package: a module may import modules of its own rank or lower.
RANKS = {
    "argus.errors": 0,
    "argus.v1": 0,
    "argus.analytics": 1,
    "argus.events": 1,
    "argus.log": 1,
    "argus.kernels.codec": 1,
    "argus.kernels.records": 1,
    "argus.kernels": 2,
    "argus.projections": 3,
    "argus.options": 4,
    "argus.heston": 4,
    "argus.connectors": 4,
    "argus.replay": 5,
    "argus.strategies": 5,
    "argus.research": 5,
    "argus.sizing": 5,
    "argus.api": 6,
    "argus.client": 6,
    "argus.cli": 6,
    "argus": 6,
}


def rank(module: str) -> int | None:
    best = None
    for prefix, r in RANKS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, r)
    return None if best is None else best[1]


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted((ROOT / "argus").rglob("*.py")):
        found.append((".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"), path))
    for path in sorted((ROOT / "cli").rglob("*.py")):
        found.append(("argus.cli." + path.stem, path))
    for path in sorted((ROOT / "kernels").glob("*.p*")):
        found.append(("argus.kernels." + path.stem, path))
    return found


def imports_of(path: Path) -> set[str]:
    text = path.read_text()
    if path.suffix == ".py":
        out = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from argus.kernels import codec` imports argus.kernels.codec, not all of argus.kernels.
                out.update(f"{node.module}.{a.name}" for a in node.names)
        return out
    return set(re.findall(r"^\s*(?:from|cimport|import)\s+(argus[\w.]*)", text, re.MULTILINE))


def test_no_module_imports_a_higher_layer() -> None:
    violations = []
    for module, path in modules():
        own = rank(module)
        assert own is not None, f"{module} has no layer in RANKS"
        for imported in imports_of(path):
            if imported.startswith("argus"):
                r = rank(imported)
                if r is not None and r > own:
                    violations.append(f"{module} (layer {own}) imports {imported} (layer {r})")
    assert violations == []


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from argus.connectors import synthetic\n")
    assert "argus.connectors.synthetic" in imports_of(bad)
    assert rank("argus.connectors.synthetic") > rank("argus.log.store")
