"""Dedup: the pure helpers, then the Ray stage end to end on near-duplicate families built from real
articles (edited copies, swapped boilerplate, changed headers, exact copies, paragraph mixtures), checked
against brute-force Jaccard; across snapshots; after a crash; and through the CLI on a foreign folder."""

from __future__ import annotations

import gzip
import json
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import sparse

from crawlproc.dedup import nodes as N
from crawlproc.dedup.edges import edges_against_index, edges_from_keys
from crawlproc.dedup.minhash import normalize_text
from crawlproc.recipe import MinHashConfig, Recipe
from crawlproc.schema import DOC_SCHEMA, docs_table

# ---------------------------------------------------------------- pure helpers


def test_edges_from_keys_are_stars_around_the_smallest_node():
    keys = np.array([5, 9, 5, 5, 7, 9], dtype=np.uint64)
    nodes = np.array([30, 11, 12, 40, 50, 10], dtype=np.int64)
    src, dst = edges_from_keys(keys, nodes)
    assert sorted(zip(src.tolist(), dst.tolist())) == [(10, 11), (12, 30), (12, 40)]
    assert edges_from_keys(np.array([], np.uint64), np.array([], np.int64))[0].size == 0


def test_edges_against_index_and_external_nodes_sort_first():
    old = N.external_nodes(1, np.array([3, 4]))
    assert (old < 0).all()
    src, dst = edges_against_index(
        np.array([1, 2, 3], np.uint64), np.array([100, 101, 102]), np.array([3, 1, 1], np.uint64), old[[0, 1, 0]]
    )
    assert dst.tolist() == [100, 102]
    assert src[0] == min(old)  # the smallest earlier node with key 1


def test_nodes_roundtrip_and_content_hash():
    nodes = N.make_nodes(3, 5)
    f, r = N.split_nodes(nodes)
    assert f.tolist() == [3] * 5 and r.tolist() == list(range(5))
    assert N.content_hash("a b") == N.content_hash("a b") != N.content_hash("a  b")


# ---------------------------------------------------------------- a corpus with planted families

BOILER_A = ("Home News Sport Business Subscribe to our newsletter for the latest headlines delivered daily. "
            "Follow us on social media. Advertisement. Cookie settings and privacy policy apply to this site.")
BOILER_B = ("Menu Search Sign in Register Share this article with friends. Read more stories from our "
            "partners. Copyright all rights reserved. Contact the newsroom with tips and corrections.")


def _edit(rng, text, n):
    words = text.split(" ")
    for _ in range(n):
        i = rng.randrange(len(words))
        if rng.random() < 0.5:
            words[i] = rng.choice(["updated", "revised", "notably", "reportedly"])
        else:
            words.insert(i, "indeed")
    return " ".join(words)


def build_corpus(articles, n_mixtures, seed=0):
    """[(id, text)]: for each article the original with boilerplate and a family of near copies, then
    distinct documents mixed from paragraphs of several articles."""
    rng = random.Random(seed)
    docs = []
    for i, text in enumerate(articles):
        paras = text.split("\n")
        docs.append((f"<a{i:03d}-orig>", f"{BOILER_A}\n{text}\n{BOILER_A}"))
        docs.append((f"<a{i:03d}-edit>", f"{BOILER_A}\n{_edit(rng, text, 6)}\n{BOILER_A}"))
        docs.append((f"<a{i:03d}-heavy>", f"{BOILER_A}\n{_edit(rng, text, 22)}\n{BOILER_A}"))  # J near 0.8
        docs.append((f"<a{i:03d}-boiler>", f"{BOILER_B}\n{text}\n{BOILER_B}"))
        docs.append((f"<a{i:03d}-header>", "Breaking: " + _edit(rng, paras[0], 3) + "\n" + "\n".join(paras[1:])))
        if i % 3 == 0:
            docs.append((f"<a{i:03d}-copy>", f"{BOILER_A}\n{text}\n{BOILER_A}"))
        docs.append((f"<a{i:03d}-rewrite>", _edit(rng, text, len(text.split()) // 3)))  # same topic, not a dup
    all_paras = [(i, p) for i, t in enumerate(articles) for p in t.split("\n") if len(p.split()) >= 20]
    for m in range(n_mixtures):
        picked = rng.sample(all_paras, 6)
        docs.append((f"<mix{m:05d}>", "\n".join(p for _, p in picked)))
    rng.shuffle(docs)
    return docs


def brute_force_pairs(texts, threshold):
    """Exact Jaccard of word 5-gram sets for all pairs (sparse matrix product): {(i, j): J} with J >= threshold."""
    vocab: dict = {}
    rows, cols = [], []
    for i, t in enumerate(texts):
        w = normalize_text(t).split()
        grams = {tuple(w[k: k + 5]) for k in range(max(1, len(w) - 4))}
        for g in grams:
            rows.append(i)
            cols.append(vocab.setdefault(g, len(vocab)))
    x = sparse.csr_matrix((np.ones(len(rows), np.int32), (rows, cols)), shape=(len(texts), len(vocab)))
    inter = (x @ x.T).tocoo()
    sizes = np.asarray(x.sum(axis=1)).ravel()
    keep = inter.row < inter.col
    r, c, v = inter.row[keep], inter.col[keep], inter.data[keep]
    j = v / (sizes[r] + sizes[c] - v)
    sel = j >= threshold
    return {(int(a), int(b)): float(s) for a, b, s in zip(r[sel], c[sel], j[sel])}


def write_docs(folder: Path, docs, dump, n_files):
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n_files):
        rows = [{"id": i, "text": t, "dump": dump, "url": f"https://example.org/{i}"} for i, t in docs[k::n_files]]
        pq.write_table(docs_table(rows), folder / f"file-{k:03d}.parquet")


def read_ids(folder: Path) -> list[str]:
    return sorted(id_ for f in sorted(folder.glob("*.parquet")) for id_ in pq.read_table(f).column("id").to_pylist())


def read_dups(dedup_dir: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in sorted((dedup_dir / "duplicates").glob("*.parquet"))])


@pytest.fixture(scope="module")
def articles(data_dir):
    with gzip.open(data_dir / "dedup" / "articles.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def small_recipe(**dedup) -> Recipe:
    r = Recipe()
    r.dedup.num_partitions = dedup.pop("num_partitions", 4)
    for k, v in dedup.items():
        setattr(r.dedup, k, v)
    r.ray.max_retries = 0
    return r


def same_outputs(a: Path, b: Path, snapshot: str) -> None:
    """The clusters parts, duplicates and final files of two runs are byte for byte the same."""
    for sub in ("dedup/clusters", "dedup/duplicates", "final"):
        names = sorted(p.name for p in (a / snapshot / sub).glob("*.parquet"))
        assert names and names == sorted(p.name for p in (b / snapshot / sub).glob("*.parquet"))
        for n in names:
            assert (a / snapshot / sub / n).read_bytes() == (b / snapshot / sub / n).read_bytes(), (sub, n)


# ---------------------------------------------------------------- the Ray stage


def test_recall_and_precision_against_brute_force_jaccard(articles, tmp_path, ray_local):
    from pipelines.stages.dedup import run_dedup

    docs = build_corpus(articles, n_mixtures=2200)
    assert len(docs) > 2800
    write_docs(tmp_path / "in", docs, "S1", n_files=5)
    summary = run_dedup(tmp_path / "out", "S1", small_recipe(components="distributed"), input_dir=tmp_path / "in",
                        log=lambda m: None)

    ids = [i for i, _ in docs]
    pos = {i: k for k, i in enumerate(ids)}
    truth = brute_force_pairs([t for _, t in docs], 0.5)
    dups = read_dups(tmp_path / "out" / "S1" / "dedup").to_pylist()
    survivor = {i: i for i in ids}
    survivor.update({d["id"]: d["kept_id"] for d in dups})

    # Recall: every pair with Jaccard >= 0.8 ends in one cluster (same survivor).
    high = [(a, b) for (a, b), j in truth.items() if j >= 0.8]
    assert len(high) > 300
    found = sum(survivor[ids[a]] == survivor[ids[b]] for a, b in high)
    assert found / len(high) >= 0.9, (found, len(high))

    # Precision: a dropped document really is a near copy of the one kept in its place.
    def jaccard(a, b):
        a, b = sorted((pos[a], pos[b]))
        return truth.get((a, b), 0.0)

    good = sum(jaccard(d["id"], d["kept_id"]) >= 0.5 for d in dups)
    assert good / len(dups) >= 0.95, (good, len(dups))

    # Families: exact copies are "exact"; rewrites and mixtures are kept; counts add up.
    kinds = {d["id"]: d["kind"] for d in dups}
    copies = [i for i in ids if i.endswith("-copy")]
    assert all(kinds.get(i, "exact") == "exact" or survivor[i] != i for i in copies)
    assert sum(i in kinds for i in ids if i.endswith("-rewrite")) <= 2
    assert summary["exact_duplicates"] >= len(copies) - 2
    final_ids = read_ids(tmp_path / "out" / "S1" / "final")
    assert len(final_ids) == summary["kept"] == len(docs) - len(dups)
    assert set(final_ids) == {i for i in ids if survivor[i] == i}
    assert summary["exact_duplicates"] + summary["near_duplicates"] == len(dups)
    done = json.loads((tmp_path / "out" / "S1" / "dedup" / "_done.json").read_text())
    assert done["kept"] == summary["kept"]
    assert sum(int(k) * v for k, v in summary["cluster_sizes"].items()) == len(dups) + summary["clusters"]
    # final/ is in the document schema and keeps the other columns
    table = pq.read_table(min((tmp_path / "out" / "S1" / "final").glob("*.parquet")))
    assert table.schema.remove_metadata() == DOC_SCHEMA
    assert set(table.column("dump").to_pylist()) == {"S1"}
    assert summary["component_rounds"] >= 1
    assert summary["components"] == "distributed"
    # the distributed components and the one-task components agree to the byte; "auto" picks the one task
    # for this many edges
    single = run_dedup(tmp_path / "single", "S1", small_recipe(components="auto"), input_dir=tmp_path / "in",
                       log=lambda m: None)
    same_outputs(tmp_path / "out", tmp_path / "single", "S1")
    assert single["components"] == "single"
    assert single["component_rounds"] == 0 and single["kept"] == summary["kept"]


def test_the_one_permutation_sketch_finds_the_same_near_duplicates(articles, tmp_path, ray_local):
    """The faster sketch (minhash.sketch = "one_permutation") is held to the classic one's recall and
    precision against brute-force Jaccard, and its signatures are not the classic ones."""
    from pipelines.stages.dedup import run_dedup

    docs = build_corpus(articles, n_mixtures=600)
    write_docs(tmp_path / "in", docs, "S1", n_files=3)
    recipe = small_recipe()
    recipe.minhash.sketch = "one_permutation"
    summary = run_dedup(tmp_path / "out", "S1", recipe, input_dir=tmp_path / "in", log=lambda m: None)
    ids = [i for i, _ in docs]
    pos = {i: k for k, i in enumerate(ids)}
    truth = brute_force_pairs([t for _, t in docs], 0.5)
    dups = read_dups(tmp_path / "out" / "S1" / "dedup").to_pylist()
    survivor = {i: i for i in ids} | {d["id"]: d["kept_id"] for d in dups}
    high = [(a, b) for (a, b), j in truth.items() if j >= 0.8]
    assert len(high) > 100
    assert sum(survivor[ids[a]] == survivor[ids[b]] for a, b in high) / len(high) >= 0.9
    good = sum(truth.get(tuple(sorted((pos[d["id"]], pos[d["kept_id"]]))), 0.0) >= 0.5 for d in dups)
    assert good / len(dups) >= 0.95
    assert summary["kept"] == len(read_ids(tmp_path / "out" / "S1" / "final")) == len(docs) - len(dups)
    classic = small_recipe()
    from crawlproc.dedup.signatures import signature_fingerprint
    meta = pq.read_schema(next((tmp_path / "out" / "S1" / "signatures").glob("*.parquet"))).metadata
    assert signature_fingerprint(recipe.minhash).encode() in meta.values()
    assert signature_fingerprint(classic.minhash).encode() not in meta.values()


def test_cross_snapshot_scope_all(articles, tmp_path, ray_local):
    from pipelines.stages.dedup import run_dedup

    rng = random.Random(4)
    first = [(f"<s1-{i}>", articles[i]) for i in range(30)]
    second = (
        [(f"<s2-new-{i}>", articles[i]) for i in range(30, 50)]  # unseen articles
        + [(f"<s2-edit-{i}>", _edit(rng, articles[i], 5)) for i in range(10)]  # near copies of S1's
        + [(f"<s2-copy-{i}>", articles[i]) for i in range(10, 15)]  # exact copies of S1's
        + [(f"<s2-twin-{i}>", _edit(rng, articles[i], 4)) for i in range(30, 35)]  # dups inside S2
    )
    out = tmp_path / "out"
    write_docs(tmp_path / "in1", first, "S1", 2)
    write_docs(tmp_path / "in2", second, "S2", 3)
    recipe = small_recipe(scope="all", num_partitions=3, components="distributed")
    s1 = run_dedup(out, "S1", recipe, input_dir=tmp_path / "in1", log=lambda m: None)
    assert s1["kept"] == 30
    assert (out / "_index" / "bands" / "S1" / "_done.json").is_file()
    # A different partition count for the second snapshot: the index is re-partitioned on the fly.
    recipe2 = small_recipe(scope="all", num_partitions=5, components="distributed")
    s2 = run_dedup(out, "S2", recipe2, input_dir=tmp_path / "in2", log=lambda m: None)
    dups = {d["id"]: d for d in read_dups(out / "S2" / "dedup").to_pylist()}
    earlier = {i for i in dups if not dups[i]["kept_id"].startswith("<s2-")}
    assert earlier == {f"<s2-edit-{i}>" for i in range(10)} | {f"<s2-copy-{i}>" for i in range(10, 15)}
    assert dups["<s2-copy-12>"]["kept_id"] == "<s1-12>"
    assert dups["<s2-edit-3>"]["cluster_id"] < 0  # clusters rooted in an earlier snapshot
    assert s2["matched_earlier"] == 15
    inner = set(dups) - earlier  # one of each twin pair inside S2
    assert all(len(inner & {f"<s2-new-{i}>", f"<s2-twin-{i}>"}) == 1 for i in range(30, 35))
    assert len(inner) == 5
    assert s2["kept"] == 20
    # earlier snapshot untouched; per-snapshot scope would keep the cross-snapshot copies
    assert read_ids(out / "S1" / "final") == sorted(i for i, _ in first)
    alone = run_dedup(tmp_path / "out_alone", "S2", small_recipe(), input_dir=tmp_path / "in2", log=lambda m: None)
    assert alone["kept"] == 35
    # the same two snapshots with the one-task components
    single = tmp_path / "single"
    run_dedup(single, "S1", small_recipe(scope="all", num_partitions=3, components="single"),
              input_dir=tmp_path / "in1", log=lambda m: None)
    run_dedup(single, "S2", small_recipe(scope="all", num_partitions=5, components="single"),
              input_dir=tmp_path / "in2", log=lambda m: None)
    for snapshot in ("S1", "S2"):
        same_outputs(out, single, snapshot)


def test_rerun_after_crash_gives_the_same_survivors(articles, tmp_path, ray_local):
    from pipelines.stages.dedup import StopAfter, run_dedup

    docs = build_corpus(articles[:40], n_mixtures=100, seed=2)
    write_docs(tmp_path / "in", docs, "S", n_files=4)
    clean = run_dedup(tmp_path / "clean", "S", small_recipe(), input_dir=tmp_path / "in", log=lambda m: None)
    expected = read_ids(tmp_path / "clean" / "S" / "final")
    assert 0 < len(expected) < len(docs)

    out = tmp_path / "crashed"
    for step in ("signatures", "edges", "components"):
        with pytest.raises(StopAfter):
            run_dedup(out, "S", small_recipe(), input_dir=tmp_path / "in", stop_after=step, log=lambda m: None)
    assert not (out / "S" / "dedup" / "_done.json").exists()
    # A crash inside the last step: some final files written, one missing, a partial temp file left behind.
    run_dedup(out, "S", small_recipe(), input_dir=tmp_path / "in", log=lambda m: None)
    (out / "S" / "dedup" / "_done.json").unlink()
    (out / "S" / "final" / "file-001.parquet").unlink()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # the crashed writer's pid: it no longer exists
    (out / "S" / "final" / f".file-001.parquet.{socket.gethostname()}-{dead.pid}-deadbeef.tmp").write_bytes(b"partial")
    again = run_dedup(out, "S", small_recipe(), input_dir=tmp_path / "in", log=lambda m: None)
    assert read_ids(out / "S" / "final") == expected
    assert again["kept"] == clean["kept"]
    assert not list((out / "S" / "final").glob(".*.tmp"))
    # and a finished run is not redone
    msgs = []
    run_dedup(out, "S", small_recipe(), input_dir=tmp_path / "in", log=msgs.append)
    assert "already done" in msgs[0]


def test_a_run_stopped_by_older_code_starts_over(articles, tmp_path, ray_local):
    """Code that writes dedup/work/ in another format (an upgrade between a crash and the rerun) must not
    resume on the files the old code left: the work format is part of the plan."""
    from pipelines.stages.dedup import StopAfter, run_dedup

    docs = build_corpus(articles[:30], n_mixtures=60, seed=5)
    write_docs(tmp_path / "in", docs, "S", n_files=3)
    clean = run_dedup(tmp_path / "clean", "S", small_recipe(), input_dir=tmp_path / "in", log=lambda m: None)
    out = tmp_path / "out"
    with pytest.raises(StopAfter):
        run_dedup(out, "S", small_recipe(), input_dir=tmp_path / "in", stop_after="shuffle", log=lambda m: None)
    # what the code before the Arrow IPC buckets left: shuffle files named .parquet, a plan without the format
    for f in (out / "S" / "dedup" / "work" / "shuffle").glob("*.arrow"):
        f.rename(f.with_suffix(".parquet"))
    plan_path = out / "S" / "dedup" / "plan.json"
    plan = json.loads(plan_path.read_text())
    plan.pop("work_format", None)
    plan_path.write_text(json.dumps(plan))
    again = run_dedup(out, "S", small_recipe(), input_dir=tmp_path / "in", log=lambda m: None)
    assert read_ids(out / "S" / "final") == read_ids(tmp_path / "clean" / "S" / "final")
    assert again["kept"] == clean["kept"]


def test_cli_on_a_foreign_folder_and_bad_input(articles, tmp_path, ray_local, capsys):
    from pipelines.cli import main

    # A FineWeb-like shard: extra columns, no dump/warc_offset columns, int token_count.
    src = tmp_path / "fineweb"
    src.mkdir()
    texts = articles[:6] + [articles[0], _edit(random.Random(1), articles[1], 3)]
    table = pa.table({
        "text": texts, "id": [f"<fw-{i}>" for i in range(8)], "url": ["u"] * 8,
        "token_count": list(range(8)), "extra": [1.5] * 8,
    })
    pq.write_table(table, src / "000_00000.parquet")
    rc = main(["dedup", "--out", str(tmp_path / "out"), "--snapshot", "FW", "--input-dir", str(src)])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["documents"] == 8 and summary["kept"] == 6
    final = pq.read_table(tmp_path / "out" / "FW" / "final" / "000_00000.parquet")
    assert final.column_names == DOC_SCHEMA.names
    assert final.column("token_count").to_pylist() == list(range(6))

    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(src / "000_00000.parquet", bad / "a.parquet")
    (bad / "b.parquet").write_bytes(b"not parquet at all")
    # a folder that cannot be deduplicated is refused before any work (issue 31: before Ray starts), exit 2
    rc = main(["dedup", "--out", str(tmp_path / "out"), "--snapshot", "BAD", "--input-dir", str(bad)])
    assert rc == 2
    assert "b.parquet" in capsys.readouterr().err
    pq.write_table(pa.table({"body": ["x"], "id": ["1"]}), bad / "b.parquet")
    rc = main(["dedup", "--out", str(tmp_path / "out"), "--snapshot", "BAD", "--input-dir", str(bad)])
    assert rc == 2
    assert "'text'" in capsys.readouterr().err
    assert not (tmp_path / "out" / "BAD").exists()


def test_pii_is_applied_to_survivors_and_dedup_can_be_disabled(articles, tmp_path, ray_local):
    from pipelines.stages.dedup import run_dedup

    contact = " Contact: press@news-site.com, server 93.184.216.34, intranet 192.168.1.20."
    docs = [("<p0>", articles[0] + contact), ("<p1>", articles[0] + contact), ("<p2>", articles[1])]
    write_docs(tmp_path / "in", docs, "P", n_files=1)
    summary = run_dedup(tmp_path / "out", "P", small_recipe(), input_dir=tmp_path / "in", log=lambda m: None)
    final = pq.read_table(tmp_path / "out" / "P" / "final" / "file-000.parquet").to_pylist()
    assert [r["id"] for r in final] == ["<p0>", "<p2>"]
    assert final[0]["text"].endswith(" Contact: email@example.com, server 0.0.0.0, intranet 192.168.1.20.")
    assert summary["pii"] == {"emails": 1, "ips": 1}
    assert summary["exact_duplicates"] == 1

    off = small_recipe(enabled=False)
    summary = run_dedup(tmp_path / "out2", "P", off, input_dir=tmp_path / "in", log=lambda m: None)
    assert summary["kept"] == 3 and summary["exact_duplicates"] == 0
    assert not (tmp_path / "out2" / "P" / "signatures").exists()


def test_signatures_written_elsewhere_are_reused_stale_ones_recomputed(articles, tmp_path, ray_local):
    from crawlproc.dedup.signatures import docs_fingerprint, signature_table
    from crawlproc.store.storage import atomic_write_table
    from pipelines.stages.dedup import run_dedup

    docs = [(f"<r{i}>", articles[i]) for i in range(6)] + [("<r6>", articles[2])]
    docs_dir = tmp_path / "out" / "R" / "docs"
    write_docs(docs_dir, docs, "R", n_files=1)
    sig_path = tmp_path / "out" / "R" / "signatures" / "file-000.parquet"
    # As the extract task would write it, with the texts and the docs file's bytes in memory.
    fingerprint = docs_fingerprint((docs_dir / "file-000.parquet").read_bytes())
    atomic_write_table(sig_path, signature_table([i for i, _ in docs], [t for _, t in docs], docs=fingerprint))
    before = sig_path.stat().st_mtime_ns
    summary = run_dedup(tmp_path / "out", "R", small_recipe(), input_dir=docs_dir, log=lambda m: None)
    assert summary["kept"] == 6 and sig_path.stat().st_mtime_ns == before
    # Signatures of another docs file, or with other settings, or not matching the file, are recomputed.
    for stale in (signature_table([i for i, _ in docs], [t for _, t in docs], docs="1:other"),
                  signature_table([i for i, _ in docs], [t for _, t in docs], MinHashConfig(seed=3), docs=fingerprint),
                  signature_table(["x"], [articles[0]], docs=fingerprint)):
        atomic_write_table(sig_path, stale)
        summary = run_dedup(tmp_path / "out", "R", small_recipe(), input_dir=docs_dir, force=True, log=lambda m: None)
        assert summary["kept"] == 6 and pq.read_table(sig_path).num_rows == 7
        assert pq.read_schema(sig_path).metadata[b"crawlproc.docs"].decode() == fingerprint


def test_a_rewritten_docs_file_with_as_many_rows_gets_new_signatures(articles, tmp_path, ray_local):
    """Issue 11, item 2: signatures belong to the docs file's bytes, not to its name and row count."""
    from pipelines.stages.dedup import run_dedup

    docs_dir = tmp_path / "out" / "R" / "docs"
    write_docs(docs_dir, [(f"<r{i}>", articles[i]) for i in range(6)], "R", n_files=1)
    assert run_dedup(tmp_path / "out", "R", small_recipe(), input_dir=docs_dir, log=lambda m: None)["kept"] == 6
    # Same file name, same row count, now three texts twice each.
    write_docs(docs_dir, [(f"<r{i}>", articles[i % 3]) for i in range(6)], "R", n_files=1)
    again = run_dedup(tmp_path / "out", "R", small_recipe(), input_dir=docs_dir, log=lambda m: None)
    assert again["kept"] == 3 and again["exact_duplicates"] == 3
    assert read_ids(tmp_path / "out" / "R" / "final") == ["<r0>", "<r1>", "<r2>"]


def test_dedup_before_any_finished_extract_names_the_cause_and_the_fix(data_dir, tmp_path, ray_local, capsys):
    from pipelines.cli import main
    from pipelines.stages.extract import run_extract

    out = tmp_path / "out"
    rc = main(["dedup", "--out", str(out), "--snapshot", "S"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "no extracted documents" in err and "crawlproc extract" in err, err

    # An extract killed after writing its documents and before its done marker (found by the command-sequence
    # property): docs/ holds a file, but no file of the snapshot is finished.
    run_extract([str(data_dir / "warc" / "dolma_sample-0000.warc.gz")], str(out), Recipe(), dump="S",
                progress=False)
    for marker in (out / "S" / "_done").glob("*.json"):
        marker.unlink()
    rc = main(["dedup", "--out", str(out), "--snapshot", "S"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "dolma_sample-0000" in err and "no done marker" in err and "crawlproc extract" in err, err
    assert not (out / "S" / "dedup" / "_done.json").exists()


def test_finalize_counts_the_dropped_documents_not_the_pii_candidates(tmp_path):
    """Issue 26: finalize reused `rows` for the PII candidate rows before counting the dropped ones, so the
    `crawlproc.dedup` metadata of a final/ file said "dropped: <PII candidates>"."""
    from crawlproc.dedup.finalize import STATS_KEY, finalize_file
    from crawlproc.dedup.schemas import CLUSTER_SCHEMA
    from crawlproc.recipe import PiiConfig

    texts = [f"Document {i} about rivers and valleys, written by person{i}@example.org for the archive."
             for i in range(6)]
    rows = [{"text": t, "id": f"<urn:doc:{i}>", "dump": "S", "url": f"https://e.org/{i}", "date": "2024-01-01",
             "file_path": "f", "language": "en", "language_score": 0.9, "token_count": 12} for i, t in
            enumerate(texts)]
    docs = tmp_path / "docs.parquet"
    pq.write_table(docs_table(rows), docs)
    dropped = [1, 3]  # two duplicates of this file; every one of the six texts holds an e-mail address
    clusters = tmp_path / "clusters.parquet"
    pq.write_table(pa.table({"node": N.make_nodes(0, 6)[dropped], "cluster_id": [0, 2], "kind": [1, 1],
                             "kept_id": ["<urn:doc:0>", "<urn:doc:2>"]}, schema=CLUSTER_SCHEMA), clusters)
    final = tmp_path / "final.parquet"
    stats = finalize_file(str(docs), str(clusters), str(tmp_path / "dup.parquet"), str(final), PiiConfig())
    assert stats["documents"] == 6 and stats["kept"] == 4 and stats["dropped"] == len(dropped)
    assert stats["pii_emails"] == 4
    meta = json.loads(pq.read_schema(final).metadata[STATS_KEY])
    assert meta["dropped"] == len(dropped) and meta["kept"] == 4
    assert pq.read_table(tmp_path / "dup.parquet").num_rows == len(dropped)


# ---------------------------------------------------------------- across snapshots: one meaning (issue 24)

OLD, NEW, NEWEST = "CC-MAIN-2024-10", "CC-MAIN-2024-18", "CC-MAIN-2024-22"  # by name = by crawl date


def extract_like(out: Path, snapshot: str, docs) -> None:
    """A snapshot's docs/ and extract markers, as the extract stage leaves them (one file)."""
    from crawlproc.store.layout import Layout

    snap = Layout(str(out)).snapshot(snapshot)
    rows = [{"id": i, "text": t, "dump": snapshot, "url": f"https://example.org/{i}"} for i, t in docs]
    pq.write_table(docs_table(rows), Path(snap.path("docs", "f0")).parent.mkdir(parents=True, exist_ok=True)
                   or snap.path("docs", "f0"))
    fp = f"{abs(hash(tuple(i for i, _ in docs))) % 16**16:016x}"
    for stem, old in snap.markers.done().items():
        snap.markers.unmark(stem, old)
    snap.markers.mark_done("f0", fp, {"stage": "extract"})


def survivors(out: Path) -> dict[str, list[str]]:
    return {s: read_ids(out / s / "final") for s in (OLD, NEW, NEWEST) if (out / s / "final").is_dir()}


@pytest.fixture(scope="module")
def three_crawls(articles):
    """The same pages crawled three times: each crawl adds its own pages and repeats (or edits) older ones."""
    rng = random.Random(7)
    old = [(f"<old-{i}>", articles[i]) for i in range(12)]
    new = ([(f"<new-{i}>", articles[i]) for i in range(12, 20)] + [(f"<new-copy-{i}>", articles[i]) for i in range(4)]
           + [(f"<new-edit-{i}>", _edit(rng, articles[i], 4)) for i in range(4, 8)])
    newest = ([(f"<newest-{i}>", articles[i]) for i in range(20, 24)] + [(f"<newest-old-{i}>", articles[i])
                                                                        for i in range(8, 10)]
              + [(f"<newest-new-{i}>", _edit(rng, articles[i], 3)) for i in range(12, 15)])
    return {OLD: old, NEW: new, NEWEST: newest}


def _expected(crawls) -> dict[str, list[str]]:
    """Older crawls win: a newer crawl keeps only the pages no older crawl has (the planted copies and edits)."""
    return {OLD: sorted(i for i, _ in crawls[OLD]),
            NEW: sorted(i for i, _ in crawls[NEW] if i.startswith("<new-") and "-copy-" not in i and "-edit-" not in i),
            NEWEST: sorted(i for i, _ in crawls[NEWEST] if i.startswith("<newest-") and "-old-" not in i
                           and "-new-" not in i)}


@pytest.mark.parametrize("sequence", [
    # (snapshot extracted, or deduplicated with a scope), in command order
    [("x", OLD), ("x", NEW), ("x", NEWEST), ("all", OLD), ("all", NEW), ("all", NEWEST)],
    [("x", OLD), ("x", NEW), ("x", NEWEST), ("all", NEWEST), ("all", NEW), ("all", OLD)],
    [("x", NEWEST), ("all", NEWEST), ("x", NEW), ("all", NEW), ("x", OLD), ("all", OLD)],  # crawls arrive late
    [("x", OLD), ("snapshot", OLD), ("x", NEW), ("all", NEW), ("x", NEWEST), ("all", NEWEST)],  # issue 24's case
    [("x", OLD), ("x", NEW), ("all", NEW), ("all", OLD), ("x", NEWEST), ("all", NEWEST), ("all", OLD)],
], ids=["oldest-first", "newest-first", "late-arrivals", "older-scope-snapshot", "older-redone"])
def test_cross_snapshot_survivors_do_not_depend_on_command_order(three_crawls, sequence, tmp_path, ray_local):
    from pipelines.stages.dedup import run_dedup

    out = tmp_path / "out"
    for what, snapshot in sequence:
        if what == "x":
            extract_like(out, snapshot, three_crawls[snapshot])
        else:
            run_dedup(out, snapshot, small_recipe(scope=what), log=lambda m: None)
    assert survivors(out) == _expected(three_crawls)
    every = [i for ids in survivors(out).values() for i in ids]
    assert len(every) == len(set(every))
    summary = json.loads((out / NEWEST / "dedup" / "summary.json").read_text())
    assert summary["matched_by_snapshot"] == {OLD: 2, NEW: 3}  # each match is named by its older crawl


def test_an_older_snapshot_is_never_stripped_against_a_newer_one(three_crawls, tmp_path, ray_local):
    from pipelines.stages.dedup import run_dedup

    out = tmp_path / "out"
    for s in (OLD, NEW):
        extract_like(out, s, three_crawls[s])
    run_dedup(out, NEW, small_recipe(scope="all"), log=lambda m: None)
    old = run_dedup(out, OLD, small_recipe(scope="all"), log=lambda m: None)
    assert old["kept"] == len(three_crawls[OLD]) and old["matched_earlier"] == 0
    assert survivors(out)[OLD] == sorted(i for i, _ in three_crawls[OLD])


def test_a_changed_minhash_rebuilds_the_older_index_and_a_stale_dedup_is_not_tokenized(three_crawls, tmp_path,
                                                                                       ray_local):
    """Issue 26: the band index recorded num_partitions but not the MinHash settings, so with another
    [minhash] a newer snapshot silently matched nothing. Now the index is rebuilt with this recipe's settings."""
    from pipelines.stages.dedup import run_dedup
    from pipelines.stages.tokenize import TokenizeError, find_inputs

    out = tmp_path / "out"
    for s in (OLD, NEW):
        extract_like(out, s, three_crawls[s])
    run_dedup(out, OLD, small_recipe(scope="all"), log=lambda m: None)
    other = small_recipe(scope="all")
    other.minhash.seed = 1234
    new = run_dedup(out, NEW, other, log=lambda m: None)
    assert new["matched_by_snapshot"] == {OLD: 8} and survivors(out)[NEW] == _expected(three_crawls)[NEW]
    # OLD's files change after NEW was matched against them: NEW's final/ is stale until it is redone
    extract_like(out, OLD, three_crawls[OLD][:6])
    from crawlproc.store.layout import Layout

    with pytest.raises(TokenizeError, match="run `crawlproc dedup --snapshot CC-MAIN-2024-18"):
        find_inputs(Layout(str(out)), [NEW], "final", lambda m: None, other)
