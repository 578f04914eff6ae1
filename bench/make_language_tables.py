"""Write crawlproc/data/languages/: the per-language facts crawlproc reads, derived from their published sources.

    python bench/make_language_tables.py --fineweb2 <a checkout of huggingface/fineweb-2>

- splitters.tsv: which word splitter each language-script uses, from datatrove 0.10.1's
  `datatrove/assets/tokenizer_assignment.csv` (FineWeb-2's assignment; read from the installed datatrove):
  SpaCyTokenizer(x) -> spacy x (zh -> jieba and ja -> sudachi, the segmenters spaCy's zh/ja tokenizers wrap),
  KiwiTokenizer -> kiwi, ThaiTokenizer -> pythainlp, IndicNLPTokenizer(x) -> indicnlp x, WhitespaceTokenizer ->
  spacy xx; the others keep datatrove's name (stanza, khmer, lao, tibetan, burmese: not available here).
- codes.tsv: the language-script a bare language code stands for (its default script), for every ISO 639-3 code
  and every ISO 639-1 code datatrove marks as that code's default.
- fineweb2.json.gz: every configs/{lang}_{script}.yml of huggingface/fineweb-2 (thresholds and stop words), as
  {lang_script: {key: value}}.
- rehydration.json.gz: FineWeb-2's upsampling weights by duplicate-cluster size: "default" (the README's,
  {1: 1, 2: 2, 3: 3, 5: 5, 100: 8, 1000: 1}) and, per maximum repetition count 3..10, the per-language tables
  of misc/rehydration/weights/up_to_{NN}_reps.json.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crawlproc" / "data" / "languages"
KIND = {"KiwiTokenizer": "kiwi", "ThaiTokenizer": "pythainlp", "IndicNLPTokenizer": "indicnlp",
        "StanzaTokenizer": "stanza", "KhmerTokenizer": "khmer", "LaoTokenizer": "lao",
        "TibetanTokenizer": "tibetan", "BurmeseTokenizer": "burmese"}


def splitter(kind: str, arg: str) -> tuple[str, str]:
    if kind == "SpaCyTokenizer":
        return {"zh": ("jieba", "zh"), "ja": ("sudachi", "ja")}.get(arg, ("spacy", arg))
    if kind == "WhitespaceTokenizer":
        return "spacy", "xx"
    return KIND[kind], arg


def tables() -> tuple[list[tuple], dict[str, str]]:
    import datatrove

    path = Path(datatrove.__file__).parent / "assets" / "tokenizer_assignment.csv"
    rows, codes = [], {}
    with open(path, encoding="utf-8") as f:
        for r in csv.DictReader(f):
            ls = f"{r['code_3']}_{r['script']}"
            if r["type"]:
                rows.append((ls, *splitter(r["type"], r["tok_code"]), r["name"]))
            if r["default_script"] == "TRUE":
                codes.setdefault(r["code_3"], ls)
                if r["code_1"] and r["default_code_1"] == "TRUE":
                    codes.setdefault(r["code_1"], ls)
    return sorted(set(rows)), codes


def fineweb2(repo: Path) -> dict[str, dict]:
    git = ["git", f"--git-dir={repo / '.git'}" if (repo / ".git").exists() else f"--git-dir={repo}"]
    names = subprocess.run([*git, "ls-tree", "--name-only", "HEAD", "configs/"], capture_output=True, text=True,
                           check=True).stdout.split()
    out = {}
    for name in names:
        text = subprocess.run([*git, "show", f"HEAD:{name}"], capture_output=True, text=True, check=True).stdout
        out[Path(name).stem] = yaml.safe_load(text)
    return out


README_WEIGHTS = {1: 1, 2: 2, 3: 3, 5: 5, 100: 8, 1000: 1}  # huggingface/fineweb-2 README, "Rehydrater"


def rehydration(repo: Path) -> dict:
    git = ["git", f"--git-dir={repo / '.git'}" if (repo / ".git").exists() else f"--git-dir={repo}"]
    out: dict = {"default": {str(k): v for k, v in README_WEIGHTS.items()}, "up_to": {}}
    for n in range(3, 11):
        text = subprocess.run([*git, "show", f"HEAD:misc/rehydration/weights/up_to_{n:02d}_reps.json"],
                              capture_output=True, text=True, check=True).stdout
        out["up_to"][str(n)] = json.loads(text)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fineweb2", type=Path, required=True, help="a git checkout (or bare repo) of huggingface/fineweb-2")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rows, codes = tables()
    with open(OUT / "splitters.tsv", "w", encoding="utf-8") as f:
        f.write("lang_script\tsplitter\targ\tname\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    with open(OUT / "codes.tsv", "w", encoding="utf-8") as f:
        f.write("code\tlang_script\n")
        for code, ls in sorted(codes.items()):
            f.write(f"{code}\t{ls}\n")
    configs = fineweb2(args.fineweb2)
    (OUT / "fineweb2.json.gz").write_bytes(
        gzip.compress(json.dumps(configs, ensure_ascii=False, sort_keys=True).encode("utf-8"), mtime=0))
    (OUT / "rehydration.json.gz").write_bytes(
        gzip.compress(json.dumps(rehydration(args.fineweb2), sort_keys=True).encode("utf-8"), mtime=0))
    print(f"{len(rows)} splitters, {len(codes)} codes, {len(configs)} FineWeb-2 configs -> {OUT}")


if __name__ == "__main__":
    main()
