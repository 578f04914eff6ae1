"""The decontaminate stage on a real local Ray, between dedup and tokenize: real pages with real benchmark items
planted in them; what is removed (and why), what is tokenized (each kept document once, no planted one),
resume and exactly once when a benchmark file is added, cut mode, a file that fails, the report and explain,
the command, and the same on object storage (moto)."""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crawlproc.decontam import match
from crawlproc.decontam.config import DecontaminateConfig
from crawlproc.decontam.index import build_index
from crawlproc.evalsuite import load_task
from crawlproc.recipe import Recipe, TokenizeConfig
from crawlproc.schema import docs_table
from crawlproc.store.layout import Layout
from crawlproc.store.storage import Storage, join
from pipelines.stages.decontaminate import run_decontaminate
from pipelines.stages.tokenize import run_tokenize

SNAP = "CC-MAIN-TEST"
QUIET = {"progress": False, "log": lambda _m: None}
TOKENS = TokenizeConfig(name="bpe", vocab_size=600, sample_bytes=500_000, shard_tokens=50_000, val_fraction=0.1)
PLANTS = [("arc_easy", 3), ("arc_challenge", 10), ("hellaswag", 42), ("piqa", 7), ("openbookqa", 20),
          ("lambada_openai", 5), ("hellaswag", 300), ("piqa", 250)]


def recipe_for(suite: Path, *extra: str, **decontam) -> Recipe:
    cfg = DecontaminateConfig(default_suite=False, benchmarks=[str(suite), *extra], **decontam)
    return Recipe(decontaminate=cfg, tokenize=TOKENS)


@pytest.fixture(scope="module")
def pages(data_dir) -> list[tuple[str, str]]:
    gold = json.loads((data_dir / "html" / "ground-truth.json").read_text(encoding="utf-8"))
    return [(v["url"], v["articleBody"]) for _, v in sorted(gold.items())]


@pytest.fixture(scope="module")
def suite(data_dir) -> Path:
    return data_dir / "evalsuite"


def page_text(item) -> str:
    return re.sub(r"^Question: |\nAnswer:$", "", item.context) + item.answer


def snapshot_rows(pages, suite: Path, count: int = 48, heldout_item=None) -> tuple[list[dict], dict[str, tuple]]:
    """Real pages; PLANTS' items planted into the first ones (one edited: upper case); optionally one item of
    a benchmark the recipe does not list yet, planted in the last page. Returns (rows, {id: (task, item)})."""
    rng = random.Random(1)
    rows, planted = [], {}
    for i, (url, text) in enumerate(pages[:count]):
        doc_id = f"<urn:uuid:00000000-0000-0000-0000-{i:012d}>"
        if i < len(PLANTS):
            task, k = PLANTS[i]
            item = load_task(suite / f"{task}.jsonl").items[k]
            copy = page_text(item).upper() if i == 1 else page_text(item)
            paragraphs = text.split("\n")
            at = rng.randrange(len(paragraphs) + 1)
            text = "\n".join(paragraphs[:at] + [copy] + paragraphs[at:])
            planted[doc_id] = (task, item.id)
        if heldout_item is not None and i == count - 1:
            text = text + "\n" + page_text(heldout_item)
        rows.append({"text": text, "id": doc_id, "dump": SNAP, "url": url, "language": "en"})
    return rows, planted


def write_final(storage: Storage, out: str, rows: list[dict], files: int = 3) -> None:
    snap = Layout(out, storage).snapshot(SNAP)
    for f in range(files):
        storage.write_table(snap.path("final", f"part-{f}"), docs_table(rows[f::files]))
    storage.write_json(snap.dedup.done_uri, {"snapshot": SNAP, "inputs": {}})


def read_ids(storage: Storage, out: str, kind: str) -> list[str]:
    snap = Layout(out, storage).snapshot(SNAP)
    return [i for f in snap.files(kind) for i in storage.read_table(f, columns=["id"]).column("id").to_pylist()]


def shard_ids(storage: Storage, out: str) -> list[str]:
    tokset = Layout(out, storage).tokens("bpe")
    manifest = storage.read_json(tokset.manifest_uri)
    return [i for s in manifest["shards"]
            for i in storage.read_table(tokset.path(s["file"]), columns=["id"]).column("id").to_pylist()]


def heldout_task(tmp_path: Path, suite: Path) -> tuple[Path, object]:
    """A benchmark file the first runs do not know: HellaSwag's few-shot items (train split) as a task."""
    path = tmp_path / "bench" / "heldout.jsonl"
    path.parent.mkdir()
    path.write_bytes((suite / "hellaswag.fewshot.jsonl").read_bytes())
    return path, load_task(path).items[2]


def test_removes_each_planted_item_and_tokenizes_every_other_document_once(ray_local, tmp_path, pages, suite):
    out = str(tmp_path / "out")
    storage = Storage()
    heldout, held_item = heldout_task(tmp_path, suite)
    rows, planted = snapshot_rows(pages, suite, heldout_item=held_item)
    write_final(storage, out, rows)
    recipe = recipe_for(suite)

    first = run_decontaminate(out, SNAP, recipe, **QUIET)
    assert first.ok and first.processed == 3 and (first.documents, first.removed) == (len(rows), len(planted))
    removed = [r for f in sorted((tmp_path / "out" / SNAP / "decontaminated_removed").glob("*.parquet"))
               for r in pq.read_table(f).to_pylist()]
    assert {r["id"] for r in removed} == set(planted)
    for r in removed:
        task, item_id = planted[r["id"]]
        assert (r["removed_by"], r["removed_reason"], r["decontam_item"]) == ("decontaminate", task, item_id)
        assert r["decontam_ngrams"] >= 1 and len(r["decontam_ngram"].split()) >= 8
        assert r["decontam_ngram"] in " ".join(re.findall(r"\w+", r["text"].lower()))  # words of the page
    kept = read_ids(storage, out, "decontaminated")
    assert sorted(kept + [r["id"] for r in removed]) == sorted(r["id"] for r in rows)  # each document once

    summary = json.loads((tmp_path / "out" / SNAP / "decontam" / "summary.json").read_text())
    listed = {b["name"]: b for b in summary["index"]["benchmarks"]}
    for name in ("arc_easy", "hellaswag", "lambada_openai"):
        assert listed[name]["sha256"] == hashlib.sha256((suite / f"{name}.jsonl").read_bytes()).hexdigest()
    hs = summary["benchmarks"]["hellaswag"]
    assert hs["documents"] == 2 and hs["items_seen"] >= 2 and hs["items"] == 500
    assert hs["share_seen"] == pytest.approx(hs["items_seen"] / 500)
    domains = {d for b in summary["benchmarks"].values() for d, _ in b["top_domains"]}
    assert domains == {re.sub(r"^www\.", "", r["url"].split("/")[2]) for r in rows if r["id"] in planted}

    tok = run_tokenize(out, recipe, [SNAP], **QUIET)
    assert tok.ok and sorted(shard_ids(storage, out)) == sorted(kept)  # no planted document, none twice

    # a rerun does nothing and changes nothing
    shards = {p.name: p.read_bytes() for p in (tmp_path / "out" / "tokens" / "bpe").glob("*.parquet")}
    assert run_decontaminate(out, SNAP, recipe, **QUIET).processed == 0
    assert run_tokenize(out, recipe, [SNAP], **QUIET).encoded == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "out" / "tokens" / "bpe").glob("*.parquet")} == shards

    # a benchmark file added: every file is checked again, the page holding its item leaves the shards
    more = recipe_for(suite, str(heldout))
    again = run_tokenize(out, more, [SNAP], **QUIET)  # tokenize decontaminates first
    last = rows[-1]["id"]
    assert again.ok and again.encoded == 3 and last not in shard_ids(storage, out)
    assert sorted(shard_ids(storage, out)) == sorted(set(kept) - {last})
    row = next(r for f in (tmp_path / "out" / SNAP / "decontaminated_removed").glob("*.parquet")
               for r in pq.read_table(f).to_pylist() if r["id"] == last)
    assert (row["removed_reason"], row["decontam_item"]) == ("heldout", held_item.id)


def test_cut_mode_keeps_the_rest_of_a_long_page_and_removes_a_short_one(ray_local, tmp_path, pages, suite):
    out = str(tmp_path / "out")
    storage = Storage()
    item = load_task(suite / "hellaswag.jsonl").items[42]
    long_page = pages[0][1] + "\n" + page_text(item) + "\n" + pages[1][1]
    short_page = "A short note.\n" + page_text(item)
    rows = [{"text": t, "id": f"<urn:uuid:{i}>", "dump": SNAP, "url": f"https://s{i}.example/", "token_count": 1}
            for i, t in enumerate([long_page, short_page, pages[2][1]])]
    write_final(storage, out, rows, files=1)
    recipe = recipe_for(suite, mode="cut")
    s = run_decontaminate(out, SNAP, recipe, **QUIET)
    assert (s.removed, s.cut) == (1, 1)
    kept = {r["id"]: r for r in pq.read_table(tmp_path / "out" / SNAP / "decontaminated" / "part-0.parquet").to_pylist()}
    assert set(kept) == {"<urn:uuid:0>", "<urn:uuid:2>"} and kept["<urn:uuid:2>"]["text"] == pages[2][1]
    cut = kept["<urn:uuid:0>"]["text"]
    assert pages[0][1] in cut and pages[1][1] in cut and len(cut) < len(long_page)
    assert kept["<urn:uuid:0>"]["token_count"] == len(cut.split())
    index = build_index([load_task(suite / "hellaswag.jsonl")])
    assert match.find(index, [cut]) == []  # nothing of the item is left
    cuts = pq.read_table(tmp_path / "out" / SNAP / "decontam" / "cuts" / "part-0.parquet").to_pylist()
    assert [(c["id"], c["benchmark"], c["decontam_item"]) for c in cuts] == [("<urn:uuid:0>", "hellaswag", item.id)]
    assert cuts[0]["chars_cut"] == len(long_page) - len(cut)
    from pipelines.inspect.explain import explain_document

    m = explain_document(out, "https://s0.example/")["matches"][0]
    assert m["verdict"] == "kept" and m["decontaminate"]["status"] == "cut" and m["decontaminate"]["item"] == item.id
    assert "cut" in m["summary"] and m["decontaminate"]["item_text"] == item.context + item.answer


def test_a_file_that_fails_is_reported_by_tokenize_with_its_cause_and_redone_next_time(ray_local, tmp_path, pages, suite):
    out = str(tmp_path / "out")
    storage = Storage()
    rows, _ = snapshot_rows(pages, suite, count=12)
    write_final(storage, out, rows, files=2)
    (tmp_path / "out" / SNAP / "final" / "part-9.parquet").write_bytes(b"PAR1 not parquet")
    recipe = recipe_for(suite)
    tok = run_tokenize(out, recipe, [SNAP], **QUIET)
    assert list(tok.failed) == ["part-9.parquet"] and "decontaminate" in tok.failed["part-9.parquet"]
    assert "Parquet" in tok.failed["part-9.parquet"]  # the root cause, from the decontaminate unit
    assert tok.manifest is None and not (tmp_path / "out" / "tokens" / "bpe" / "manifest.json").exists()
    (tmp_path / "out" / SNAP / "final" / "part-9.parquet").unlink()
    storage.write_table(Layout(out).snapshot(SNAP).path("final", "part-9"), docs_table(
        [{"text": pages[60][1], "id": "<urn:uuid:late>", "dump": SNAP}]))
    again = run_tokenize(out, recipe, [SNAP], **QUIET)
    assert again.ok and again.encoded == 1 and "<urn:uuid:late>" in shard_ids(storage, out)


def test_report_and_explain_name_the_benchmark_the_item_and_the_files(ray_local, tmp_path, pages, suite):
    from pipelines.inspect.explain import explain_document, format_explanation
    from pipelines.inspect.report import write_report

    out = str(tmp_path / "out")
    storage = Storage()
    rows, planted = snapshot_rows(pages, suite, count=12)
    write_final(storage, out, rows)
    recipe = recipe_for(suite)
    run_decontaminate(out, SNAP, recipe, **QUIET)
    run_tokenize(out, recipe, [SNAP], **QUIET)

    where, data = write_report(out)
    html = Path(where).read_text(encoding="utf-8")
    d = data["snapshots"][0]["decontam"]
    assert d["removed"] == len(planted) and d["benchmarks"]["piqa"]["documents"] == 2
    for name in ("hellaswag", "piqa", "arc_easy"):
        assert hashlib.sha256((suite / f"{name}.jsonl").read_bytes()).hexdigest() in html
    assert 'data-section="decontam:CC-MAIN-TEST"' in html and "share of items" in html
    funnel = {s["step"]: s for s in data["snapshots"][0]["funnel"]} if data["snapshots"][0]["funnel"] else {}
    assert not funnel or funnel["after decontamination"]["removed"] == len(planted)

    doc_id, (task, item_id) = next(iter(planted.items()))
    url = next(r["url"] for r in rows if r["id"] == doc_id)
    shown = explain_document(out, url)
    m = next(x for x in shown["matches"] if x["id"] == doc_id)
    assert (m["verdict"], m["stage"], m["reason"]) == ("removed", "decontaminate", task)
    assert m["decontaminate"]["item"] == item_id and m["tokens"] == []
    item = next(it for it in load_task(suite / f"{task}.jsonl").items if it.id == item_id)
    assert m["decontaminate"]["item_text"] == item.context + item.answer
    lines = format_explanation(shown)
    assert f"item {item_id}" in lines and m["decontaminate"]["ngram"] in lines
    clean = explain_document(out, rows[-1]["url"])["matches"][0]
    assert clean["verdict"] == "kept" and clean["decontaminate"]["status"] == "clean" and clean["tokens"]


def test_the_command_adds_benchmark_files_and_rejects_a_bad_one(ray_local, tmp_path, pages, suite, capsys):
    from pipelines.cli import main

    out = tmp_path / "out"
    rows, planted = snapshot_rows(pages, suite, count=10)
    write_final(Storage(), str(out), rows, files=1)
    recipe = tmp_path / "r.toml"
    recipe.write_text("[decontaminate]\ndefault_suite = false\n")
    address = ray_local.get_runtime_context().gcs_address
    args = ["decontaminate", "--out", str(out), "--snapshot", SNAP, "--recipe", str(recipe), "--quiet",
            "--address", address]
    assert main(args + ["--benchmark", str(suite)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["removed"] == len(planted) and printed["benchmarks"]["arc_easy"]["documents"] == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "context": "x", "choices": [], "gold": 0}\n')
    assert main(args + ["--benchmark", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "decontaminate.benchmarks" in err and "bad.jsonl:1" in err and "choices" in err
    assert main(args + ["--benchmark", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such benchmark file" in capsys.readouterr().err


def test_on_object_storage(ray_local, s3_server, tmp_path, pages, suite):
    from pipelines.inspect.explain import explain_document

    bucket = s3_server.bucket("decontam")
    out = join(bucket, "run")
    storage = Storage()
    rows, planted = snapshot_rows(pages, suite, count=12)
    write_final(storage, out, rows)
    # the benchmark files in the bucket too
    for name in ("hellaswag", "arc_easy", "piqa"):
        storage.write_bytes(join(bucket, "bench", f"{name}.jsonl"), (suite / f"{name}.jsonl").read_bytes())
    recipe = Recipe(decontaminate=DecontaminateConfig(default_suite=False, benchmarks=[join(bucket, "bench")]),
                    tokenize=TOKENS)
    s = run_decontaminate(out, SNAP, recipe, **QUIET)
    expected = {i for i, (task, _) in planted.items() if task in ("hellaswag", "arc_easy", "piqa")}
    assert s.ok and set(read_ids(storage, out, "decontaminated_removed")) == expected
    assert run_tokenize(out, recipe, [SNAP], **QUIET).ok
    assert sorted(shard_ids(storage, out)) == sorted(read_ids(storage, out, "decontaminated"))
    assert run_decontaminate(out, SNAP, recipe, **QUIET).processed == 0
    doc_id = sorted(expected)[0]
    m = next(x for x in explain_document(out, doc_id)["matches"] if x["id"] == doc_id)
    assert m["stage"] == "decontaminate" and m["decontaminate"]["item_text"]
