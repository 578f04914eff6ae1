"""The benchmark item format (crawlproc/evalsuite.py): the bundled suite and reference sets load, bad files are
refused naming the file, the line and the reason, and names resolve to files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from crawlproc.evalsuite import (
    REFERENCE_DIR, SUITE_DIR, EvalSuiteError, default_references, default_suite, lm_eval_yaml, load_reference,
    load_task, norm_length, resolve_paths,
)


def write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_the_bundled_suite_loads_with_its_sources():
    names = [p.stem for p in default_suite()]
    assert {"hellaswag", "arc_easy", "arc_challenge", "piqa", "openbookqa", "lambada_openai"} <= set(names)
    sources = (SUITE_DIR / "SOURCES.md").read_text()
    for path in default_suite():
        task = load_task(path)
        assert task.items and len({it.id for it in task.items}) == len(task.items)
        assert task.name in sources
        # every bundled choice carries the space that separates it from the context (lm-eval's delimiter)
        assert all(c.startswith(" ") for it in task.items[:200] for c in it.choices)
    hs = load_task(SUITE_DIR / "hellaswag.jsonl")
    assert len(hs.items) == 10042 and all(len(it.choices) == 4 for it in hs.items) and len(hs.fewshot) >= 5
    assert load_task(SUITE_DIR / "lambada_openai.jsonl").greedy and not hs.greedy


def test_the_bundled_reference_sets_load_and_match_their_sources_notice():
    refs = default_references()
    assert {p.stem for p in refs} == {"wikitext2_test", "pride_and_prejudice"}
    notice = (REFERENCE_DIR / "SOURCES.md").read_text()
    for path in refs:
        ref = load_reference(path)
        assert hashlib.sha256(path.read_bytes()).hexdigest() in notice  # the notice names these exact bytes
        assert f"{ref.n_bytes:,}" in notice and f"{len(ref.docs)} " in notice
        assert all(text.strip() for _, text in ref.docs)
    wiki = load_reference(REFERENCE_DIR / "wikitext2_test.jsonl")
    assert " @-@ " not in "".join(t for _, t in wiki.docs)  # WikiText's tokenization undone


def test_a_task_is_identified_by_its_bytes_and_its_fewshot_file(tmp_path):
    item = {"id": "a", "context": "The sky is", "choices": [" blue", " green"], "gold": 0}
    path = write(tmp_path / "t.jsonl", [item])
    first = load_task(path)
    write(tmp_path / "t.fewshot.jsonl", [{**item, "id": "s"}])
    second = load_task(path)
    assert first.name == "t" and len(second.fewshot) == 1 and first.sha256 != second.sha256


@pytest.mark.parametrize("row, reason", [
    ("{not json", "not JSON"),
    ('["a list"]', "JSON object"),
    ({"id": "", "context": "x", "choices": [" a"], "gold": 0}, "'id'"),
    ({"id": "a", "context": 3, "choices": [" a"], "gold": 0}, "'context'"),
    ({"id": "a", "context": "x", "choices": [], "gold": 0}, "'choices'"),
    ({"id": "a", "context": "x", "choices": [" a", ""], "gold": 0}, "'choices'"),
    ({"id": "a", "context": "x", "choices": [" a"], "gold": 1}, "'gold'"),
    ({"id": "a", "context": "x", "choices": [" a"], "gold": True}, "'gold'"),
])
def test_a_bad_item_names_the_file_the_line_and_the_reason(tmp_path, row, reason):
    good = {"id": "ok", "context": "x", "choices": [" a"], "gold": 0}
    path = write(tmp_path / "bad.jsonl", [good, row])
    with pytest.raises(EvalSuiteError) as e:
        load_task(path)
    assert f"{path}:2" in str(e.value) and reason in str(e.value)


def test_duplicate_ids_and_empty_files_are_refused(tmp_path):
    item = {"id": "a", "context": "x", "choices": [" a"], "gold": 0}
    with pytest.raises(EvalSuiteError, match="appears twice"):
        load_task(write(tmp_path / "dup.jsonl", [item, item]))
    with pytest.raises(EvalSuiteError, match="no items"):
        load_task(write(tmp_path / "empty.jsonl", []))
    with pytest.raises(EvalSuiteError, match="no such task"):
        load_task(tmp_path / "missing.jsonl")
    with pytest.raises(EvalSuiteError, match="'text'"):
        load_reference(write(tmp_path / "r.jsonl", [{"id": "d", "text": ""}]))


def test_names_resolve_to_bundled_files_or_paths(tmp_path):
    assert resolve_paths(["suite"]) == [str(p) for p in default_suite()]
    assert resolve_paths(["hellaswag", "hellaswag"]) == [str(SUITE_DIR / "hellaswag.jsonl")]
    assert resolve_paths(["none"]) == [] and resolve_paths([]) == []
    assert resolve_paths(["s3://bucket/mine.jsonl"]) == ["s3://bucket/mine.jsonl"]
    assert resolve_paths(["wikitext2_test"], "reference") == [str(REFERENCE_DIR / "wikitext2_test.jsonl")]
    with pytest.raises(EvalSuiteError, match="hellaswag"):  # the error lists what is bundled
        resolve_paths(["hellaswg"])


def test_acc_norm_length_leaves_out_the_separating_space():
    assert norm_length(" blue") == 4 and norm_length("blue") == 4 and norm_length("  x") == 2
    assert norm_length(" ") == 1  # never a division by zero


def test_the_lm_eval_yaml_matches_the_choices_convention(tmp_path):
    spaced = load_task(write(tmp_path / "a.jsonl", [{"id": "1", "context": "Q", "choices": [" x", " y"], "gold": 1}]))
    bare = load_task(write(tmp_path / "b.jsonl", [{"id": "1", "context": "Q\n", "choices": ["x", " y"], "gold": 1}]))
    greedy = load_task(write(tmp_path / "c.jsonl", [{"id": "1", "context": "Q", "choices": [" x"], "gold": 0}]))
    y = lm_eval_yaml(spaced, "/d/a.jsonl")
    assert "regex_replace" in y and 'target_delimiter: " "' in y and "acc_norm" in y
    y = lm_eval_yaml(bare, "/d/b.jsonl")
    assert "doc_to_choice: choices" in y and 'target_delimiter: ""' in y
    y = lm_eval_yaml(greedy, "/d/c.jsonl")
    assert "output_type: loglikelihood" in y and "perplexity" in y and "acc_norm" not in y
