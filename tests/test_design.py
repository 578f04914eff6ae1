"""The layering the design promises, checked on the source: crawlproc/ never imports ray (Ray lives in
pipelines/); tokenizer/ imports nothing of ours but itself and crawlproc.store (where files lie and how they are
read and written); trainer/ only tokenizer/, crawlproc.store and crawlproc.evalsuite (the one reader of benchmark
items, which imports nothing of ours)."""

from __future__ import annotations

import ast
import sys
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
    ("tokenizer", {"tokenizer", "crawlproc.store"}),
    ("trainer", {"trainer", "tokenizer", "crawlproc.store", "crawlproc.evalsuite"}),
])
def test_core_packages_import_only_what_sits_below_them(package, allowed_ours):
    def allowed(m):
        top = _ours(m)
        return top is None or top in allowed_ours or any(m == a or m.startswith(a + ".") for a in allowed_ours)

    assert offenders(package, allowed) == []


# The names of the run state (README, "The output folder is the run state"): crawlproc/store/layout.py owns them.
RUN_FILES = {"_done.json", "summary.json", "manifest.json", "plan.json", "export.json", "listing.json",
             "recipe.json", "metrics.jsonl", "samples.jsonl", "report.html", "loss.png", "eval.json"}
RUN_FOLDERS = {"_done", "_failed", "_index", "_lock", "_work", "signatures", "final", "docs", "removed",
               "classified", "classified_removed", "dedup", "classify", "tokens", "train", "parts", "ckpt",
               "selection", "stats", "bands", "recipes", "minicc", "ablate"}
LAYOUT = ROOT / "crawlproc" / "store" / "layout.py"


def path_literals(package: str) -> list[str]:
    """String literals naming run state outside layout.py: a run file's name anywhere, or a run folder's name
    given to a path builder (join, Path, '/')."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if path == LAYOUT:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and node.value in RUN_FILES:
                found.append(f"{where} {node.value!r}")
            parts = []
            if isinstance(node, ast.Call):
                fn = node.func
                if (fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)) in ("join", "Path"):
                    parts = node.args
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                parts = [node.left, node.right]
            found += [f"{where} {a.value!r}" for a in parts
                      if isinstance(a, ast.Constant) and a.value in RUN_FOLDERS]
    return found


def test_the_scan_for_path_literals_sees_them(tmp_path, monkeypatch):
    # guards the check below against passing because the scan found nothing
    pkg = tmp_path / "crawlproc"
    pkg.mkdir()
    (pkg / "m.py").write_text('x = join(root, "final")\ny = Path(a) / "_done"\nz = "summary.json"\n')
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert len(path_literals("crawlproc")) == 3


@pytest.mark.parametrize("package", OURS)
def test_run_paths_are_spelled_out_only_in_layout(package):
    """Issue 26: one owner for paths. A stage asks layout (Snapshot, StageDir, TokenSetDir, TrainRunDir,
    ExportDir) for a path instead of building it."""
    assert path_literals(package) == []
