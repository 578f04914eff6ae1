"""The layering the design promises, checked on the source: crawlproc/ never imports ray (Ray lives in
pipelines/), tokenizer/ imports nothing of ours but itself, trainer/ only tokenizer/, crawlproc.store.storage (URIs)
and crawlproc.evalsuite (the one reader of benchmark items, which imports nothing of ours)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("crawlproc", "pipelines", "tokenizer", "trainer")


def imported_modules(package: str) -> dict[str, set[str]]:
    """{file: top-level names of absolute imports, 'pkg.sub' for ours} over every module of the package."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def offenders(package: str, allowed) -> list[tuple[str, str]]:
    return [(f, m) for f, mods in imported_modules(package).items() for m in sorted(mods) if not allowed(m)]


def _ours(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in OURS else None


def test_the_scan_sees_imports():
    # guards the checks below against passing because the scan found nothing
    mods = imported_modules("pipelines")
    assert any("ray" in m for m in mods.values())
    assert any(m.startswith("crawlproc.") for ms in mods.values() for m in ms)


def test_the_benchmark_reader_imports_nothing_of_ours():
    """trainer/ reads benchmark items through crawlproc.evalsuite: it must stay a leaf."""
    mods = imported_modules("crawlproc")["crawlproc/evalsuite.py"]
    assert not [m for m in mods if _ours(m)]


def test_crawlproc_never_imports_ray():
    assert offenders("crawlproc", lambda m: m.split(".")[0] != "ray") == []


@pytest.mark.parametrize("package,allowed_ours", [
    ("crawlproc", {"crawlproc"}),
    ("tokenizer", {"tokenizer"}),
    ("trainer", {"trainer", "tokenizer", "crawlproc.store.storage", "crawlproc.evalsuite"}),
])
def test_core_packages_import_only_what_sits_below_them(package, allowed_ours):
    def allowed(m):
        top = _ours(m)
        return top is None or top in allowed_ours or any(m == a or m.startswith(a + ".") for a in allowed_ours)

    assert offenders(package, allowed) == []
