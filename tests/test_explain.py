"""`crawlproc explain`: a kept document, a quality-filter removal (its values against the thresholds), a
language removal, a dedup drop (its cluster and survivor), lookups by id and by URL, and the CLI."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawlproc.extract import registry
from crawlproc.quality.gopher_repetition import GopherRepetition
from crawlproc.recipe import load_recipe
from crawlproc.schema import REMOVED_SCHEMA, docs_table
from crawlproc.store.storage import atomic_write_json, atomic_write_table
from pipelines.cli import main
from pipelines.inspect.explain import explain_document, format_explanation, query_keys

SNAP, SNAP2 = "CC-MAIN-2024-10", "CC-MAIN-2024-18"
CLUSTER = 4_294_967_298  # dedup's cluster ids are node numbers: file_no << 32 | row
STEM = "CC-MAIN-20240221-00000"


def uid(name: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}>"


def row(name: str, url: str, text: str, dump: str = SNAP, language="en", score=0.94, **removed) -> dict:
    return {"text": text, "id": uid(name), "dump": dump, "url": url, "date": "2024-02-21T10:00:00Z",
            "file_path": f"crawl-data/{dump}/{STEM}.warc.gz", "language": language, "language_score": score,
            "token_count": len(text.split()), "warc_offset": 4096} | removed


def repeated(text: str) -> str:
    """The same four paragraphs three times over, as a broken page template produces."""
    paras = [p for p in text.split("\n") if p.strip()][:4]
    return "\n\n".join(paras * 3)


def gopher_repetition_reason(text: str) -> str:
    """What the extract stage stores as the reason: the real filter's."""
    reason = GopherRepetition(load_recipe(None).gopher_repetition)(text).reason
    assert reason is not None, "the fixture text must fail Gopher repetition"
    return reason


@pytest.fixture(scope="module")
def out(tmp_path_factory, data_dir) -> Path:
    arts = json.loads((data_dir / "report" / "articles.json").read_text(encoding="utf-8"))
    korean = next(a for a in arts if ".kr/" in a["url"])
    en = [a for a in arts if ".kr/" not in a["url"] and ".br/" not in a["url"]]
    root = tmp_path_factory.mktemp("explain") / "out"
    snap = root / SNAP
    kept = row("kept", en[0]["url"], en[0]["text"])
    dup = row("dup", en[0]["url"] + "?utm_source=x", en[0]["text"].replace("\n", "\n\n", 2))
    other = row("other", en[2]["url"], en[2]["text"])
    rep_text = repeated(en[1]["text"])
    rep = row("rep", en[1]["url"], rep_text, removed_by="gopher_repetition",
              removed_reason=gopher_repetition_reason(rep_text))
    ko = row("ko", korean["url"], korean["text"], language="ko", score=0.99, removed_by="language",
             removed_reason="ko:0.99")
    atomic_write_table(snap / "docs" / f"{STEM}.parquet", docs_table([kept, dup, other]))
    stub = row("stub", "https://example.org/paywall", "Subscribe now to keep reading this story.",
               removed_by="gopher_quality", removed_reason="gopher_short_doc")
    atomic_write_table(snap / "removed" / f"{STEM}.parquet", docs_table([rep, ko, stub], REMOVED_SCHEMA))
    atomic_write_table(snap / "dedup" / "duplicates" / f"{STEM}.parquet", pa.table({  # as dedup writes it
        "id": [dup["id"]], "cluster_id": pa.array([CLUSTER], pa.int64()), "kept_id": [kept["id"]],
        "kind": ["near"]}))
    atomic_write_json(snap / "dedup" / "summary.json", {"documents": 3, "exact_duplicates": 0,
                                                        "near_duplicates": 1, "clusters": 1,
                                                        "cluster_sizes": {"2": 1}, "seconds": 0.1})
    atomic_write_table(snap / "final" / f"{STEM}.parquet", docs_table([kept, other]))
    atomic_write_table(root / "tokens" / "bpe" / "train-00000.parquet", pa.table({
        "id": pa.array([kept["id"], other["id"]]),
        "tokens": pa.array([list(range(120)), list(range(80))], pa.list_(pa.uint16()))}))
    # A later snapshot crawled the same URL again (a new record id): only its extract stage has run.
    again = row("again", en[0]["url"], en[0]["text"], dump=SNAP2)
    atomic_write_table(root / SNAP2 / "docs" / f"{STEM}.parquet", docs_table([again]))
    return root


def test_query_keys_accept_bare_uuids_and_urls():
    ids, urls = query_keys("0b5a3c2e-1111-2222-3333-444455556666")
    assert "<urn:uuid:0b5a3c2e-1111-2222-3333-444455556666>" in ids and not urls
    ids, urls = query_keys("https://example.com/a?b=1")
    assert urls == {"https://example.com/a?b=1", "http://example.com/a?b=1"}
    _, urls = query_keys("http://example.com/a")
    assert urls == {"http://example.com/a", "http://example.com/a/", "https://example.com/a", "https://example.com/a/"}


def test_kept_document_by_id(out):
    res = explain_document(out, uid("kept"))
    (m,) = res["matches"]
    assert m["verdict"] == "kept" and m["snapshot"] == SNAP
    assert {f["kind"] for f in m["found_in"]} == {"docs", "final"}
    assert "survivor of cluster" in m["summary"] and m["dedup"]["dropped"] == 1
    assert m["tokens"] == [{"set": "bpe", "file": "train-00000.parquet", "split": "train", "tokens": 120}]
    # a kept document passes every recomputed check
    assert [c["stage"] for c in m["checks"]] == [f.name for f in registry.FILTERS]
    assert all(c["reason"] is None for c in m["checks"] if c.get("enabled"))
    values = [v for c in m["checks"] for v in c.get("values", [])]
    assert not any(v["failed"] for v in values)
    assert any(v["passed"] and v["threshold"] is not None for v in values)


def test_quality_removal_shows_values_against_thresholds(out):
    url = explain_document(out, uid("rep"))["matches"][0]["url"]
    res = explain_document(out, url)  # by URL this time
    (m,) = res["matches"]
    assert m["verdict"] == "removed" and m["stage"] == "gopher_repetition"
    assert m["reason"] == gopher_repetition_reason(_stored_text(out, "rep"))
    assert m["found_in"] == [{"kind": "removed", "file": f"{SNAP}/removed/{STEM}.parquet"}]
    text = format_explanation(res)
    assert "removed by gopher_repetition" in text
    (stage,) = m["checks"]  # only the stage that removed it: the stored text is what that stage saw
    assert stage["stage"] == "gopher_repetition" and stage["reason"] == m["reason"]
    assert m["recomputed_agrees"] is True
    failed = [v for v in stage["values"] if v["failed"]]
    assert [v["name"] for v in failed] == [m["reason"]]
    assert failed[0]["value"] is not None
    thresholds = GopherRepetition(load_recipe(None).gopher_repetition).thresholds()
    if m["reason"] in thresholds:
        assert failed[0]["threshold"] == pytest.approx(thresholds[m["reason"]][1])
    assert "FAIL" in text and m["reason"] in text


def test_short_doc_value_and_recipe_override(out, tmp_path, capsys):
    (m,) = explain_document(out, uid("stub"))["matches"]
    (check,) = m["checks"]
    failed = {v["name"]: v for v in check["values"] if v["failed"]}
    assert set(failed) == {"gopher_short_doc"}
    assert failed["gopher_short_doc"]["value"] == 7  # words
    assert (failed["gopher_short_doc"]["comparison"], failed["gopher_short_doc"]["threshold"]) == ("<", 50)
    assert m["recomputed_agrees"] is True
    # Under a recipe that allows 5-word documents the recomputed verdict no longer matches the stored one.
    recipe = tmp_path / "short.toml"
    recipe.write_text("[gopher_quality]\nmin_doc_words = 5\n")
    assert main(["explain", "--out", str(out), "--recipe", str(recipe), uid("stub")]) == 0
    text = capsys.readouterr().out
    assert "recomputed verdict DIFFERS from the stored one" in text
    assert main(["explain", "--out", str(out), "--recipe", str(tmp_path / "nope.toml"), uid("stub")]) == 2


def _stored_text(out: Path, name: str) -> str:
    t = pq.read_table(out / SNAP / "removed" / f"{STEM}.parquet").to_pylist()
    return next(r["text"] for r in t if r["id"] == uid(name))


def test_language_removal(out):
    (m,) = explain_document(out, uid("ko"))["matches"]
    assert (m["verdict"], m["stage"], m["reason"]) == ("removed", "language", "ko:0.99")
    lc = m["language_check"]
    assert lc["language"] == "ko" and lc["language_ok"] is False and lc["score_ok"] is True
    assert m["checks"] == []  # no quality stage saw it


def test_dedup_drop_names_cluster_and_survivor(out):
    bare = uid("dup").strip("<>").removeprefix("urn:uuid:").upper()
    res = explain_document(out, bare)  # a bare uuid in another case, as users retype it
    (m,) = res["matches"]
    assert m["verdict"] == "duplicate" and m["stage"] == "dedup"
    assert m["dedup"]["cluster_id"] == CLUSTER and m["dedup"]["kept_id"] == uid("kept")
    assert m["dedup"]["kind"] == "near"
    assert m["dedup"]["kept_url"] == explain_document(out, uid("kept"))["matches"][0]["url"]
    assert m["tokens"] == [] and m["checks"] == []  # a duplicate's story is its cluster, not filter values
    assert f"surviving id {uid('kept')}" in format_explanation(res)


def test_url_seen_in_two_snapshots(out):
    url = explain_document(out, uid("kept"))["matches"][0]["url"]
    res = explain_document(out, url)
    assert sorted(m["snapshot"] for m in res["matches"]) == [SNAP, SNAP2]
    retyped = explain_document(out, url.replace("https://", "http://", 1).rstrip("/"))
    assert sorted(m["id"] for m in retyped["matches"]) == sorted(m["id"] for m in res["matches"])
    later = next(m for m in res["matches"] if m["snapshot"] == SNAP2)
    assert later["verdict"] == "kept" and "dedup has not run" in later["summary"]


def test_cli_text_json_and_not_found(out, capsys):
    assert main(["explain", "--out", str(out), uid("ko")]) == 0
    assert "REMOVED: removed by language (ko:0.99)" in capsys.readouterr().out
    assert main(["explain", "--out", str(out), "--json", uid("dup")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["matches"][0]["verdict"] == "duplicate"
    assert main(["explain", "--out", str(out), "https://nowhere.example/"]) == 1
    assert "no document matches" in capsys.readouterr().out
    assert main(["explain", "--out", str(out / "missing"), "x"]) == 2


def test_damaged_file_is_reported_and_skipped(out, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    (copy / SNAP / "docs" / "torn.parquet").write_bytes(b"PAR1 not really")
    res = explain_document(copy, uid("kept"))
    assert res["matches"][0]["verdict"] == "kept"
    assert any("torn.parquet: unreadable Parquet" in p for p in res["problems"])


def test_the_recipe_the_run_recorded_is_used(out, tmp_path):
    """A run records its recipe; explain judges by it unless --recipe says otherwise."""
    import shutil

    from crawlproc.recipe import recipe_from_dict
    from crawlproc.store.layout import Layout
    from crawlproc.store.storage import atomic_write_json

    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    lenient = recipe_from_dict({"gopher_quality": {"min_doc_words": 5}})
    atomic_write_json(Layout(str(copy)).snapshot(SNAP).recipe_uri, lenient.to_dict())
    (m,) = explain_document(copy, uid("stub"))["matches"]
    assert m["recomputed_agrees"] is False  # judged by the recorded, lenient recipe
    (m,) = explain_document(copy, uid("stub"), load_recipe(None))["matches"]
    assert m["recomputed_agrees"] is True
