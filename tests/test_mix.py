"""`crawlproc mix` on real token sets: exact counts against the weights (checked against an independent
selection), 'all' and upsampling counts, a global shuffle, the same document in two sources once, refusals,
object storage, a SIGKILL at any pass then the same command giving byte-identical output, and the trainer
reading a mix and recording it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from crawlproc.recipe import Recipe
from crawlproc.store.storage import Storage, join
from pipelines.cli import main as crawlproc
from pipelines.stages.mix import run_mix
from tokenizer.mix.config import MixConfig, MixSource, config_from_args, load_mix_toml
from tokenizer.mix.decide import MixError, bucket_of, parse_spec, parse_tokens, select_keys, shuffle_keys, split_source
from tokenizer.tokenset import write_token_set

REPO = Path(__file__).resolve().parents[1]
VOCAB = 300


def make_source(root: Path, name: str, n_train: int, n_val: int, seed: int, docs_per_shard: int = 40,
                vocab: int = VOCAB) -> Path:
    """A token set whose documents have varied lengths (5..120 tokens) and contents."""
    rng = np.random.default_rng(seed)
    docs = {split: [rng.integers(1, vocab, rng.integers(5, 121)).tolist() for _ in range(n)]
            for split, n in (("train", n_train), ("val", n_val))}
    write_token_set(root / name, docs, vocab_size=vocab, eot_id=0, docs_per_shard=docs_per_shard,
                    docs_per_row_group=16)
    return root / name


def read_set(tokset: Path | str, storage: Storage | None = None) -> tuple[dict, dict[str, list[dict]]]:
    """(manifest, {split: rows in manifest order}) of a token set."""
    storage = storage or Storage()
    manifest = json.loads(storage.read_bytes(join(str(tokset), "manifest.json")))
    rows: dict[str, list[dict]] = {"train": [], "val": []}
    for s in manifest["shards"]:
        rows[s["split"]] += storage.read_table(join(str(tokset), s["file"])).to_pylist()
    return manifest, rows


def source_docs(tokset: Path) -> dict[str, dict[str, list[int]]]:
    _, rows = read_set(tokset)
    return {split: {r["id"]: r["tokens"] for r in rs} for split, rs in rows.items()}


def expected_selection(docs: dict[str, list[int]], target: int, seed: int) -> set[str]:
    """An independent reading of the rule: documents in selection-key order until `target` tokens."""
    ids = sorted(docs)
    u = select_keys(ids, seed)
    taken, out = 0, set()
    for k in np.argsort(u, kind="stable"):
        if taken >= target:
            break
        out.add(ids[k])
        taken += len(docs[ids[k]])
    return out


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    return {"a": make_source(root, "a", 160, 20, 1), "b": make_source(root, "b", 120, 16, 2),
            "c": make_source(root, "c", 30, 4, 3)}


def mix(out: Path | str, cfg: MixConfig, **kw):
    return run_mix(str(out), cfg, Recipe(), progress=False, log=lambda *_: None, **kw)


def test_specs_and_sizes_parse():
    assert parse_spec("0.7").kind == "weight" and parse_spec("x1.5").value == 1.5 and parse_spec("all").kind == "all"
    assert split_source("s3://bucket/tokens/a:0.3") == ("s3://bucket/tokens/a", parse_spec("0.3"))
    assert split_source("out/tokens/b:x2")[1].value == 2.0
    assert parse_tokens("50M") == 50_000_000 and parse_tokens("1.5B") == 1_500_000_000 and parse_tokens(7) == 7
    for bad in ("s3://bucket/tokens/a", "a:-1", "a:x", "a:0", "a:half"):
        with pytest.raises(MixError, match="PATH:WEIGHT|bad"):
            split_source(bad)
    with pytest.raises(MixError, match="need a token budget"):
        config_from_args(["a:0.5"], "m", None, 0, None, None)
    with pytest.raises(MixError, match="needs at least one weighted"):
        config_from_args(["a:all"], "m", "1M", 0, None, None)


def test_weights_give_exact_counts_and_a_global_shuffle(ray_local, sources, tmp_path):
    budget, seed = 6000, 11
    cfg = MixConfig([MixSource(str(sources["a"]), parse_spec("0.7")), MixSource(str(sources["b"]), parse_spec("0.3"))],
                    name="m", budget=budget, seed=seed, bucket_tokens=1500, shard_tokens=700)
    summary = mix(tmp_path, cfg)
    assert summary.ok
    manifest, rows = read_set(tmp_path / "tokens" / "m")
    a, b = source_docs(sources["a"]), source_docs(sources["b"])
    got = Counter((r["source"], r["id"]) for r in rows["train"])
    assert max(got.values()) == 1  # weighted sources: no document twice
    for idx, (docs, weight) in enumerate(((a, 0.7), (b, 0.3))):
        target = round(budget * weight)
        want = expected_selection(docs["train"], target, seed)
        mine = {i for s, i in got if s == idx}
        assert mine == want  # exactly the documents the rule names
        tokens = sum(len(docs["train"][i]) for i in mine)
        longest = max(map(len, docs["train"].values()))
        assert target <= tokens < target + longest  # the budget share, exact to one document
        entry = manifest["mix"]["sources"][idx]
        assert entry["target_tokens"] == target and entry["realized"]["train"]["tokens"] == tokens
        assert entry["realized"]["train"]["documents"] == len(mine)
        assert entry["manifest_sha256"] and entry["spec"] == f"{weight:g}"
    # every document's tokens are the source's, and the val split is the sources' own val, sampled at the cut
    for r in rows["train"]:
        assert r["tokens"] == (a, b)[r["source"]]["train"][r["id"]]
    assert {r["id"] for r in rows["val"]} <= set(a["val"]) | set(b["val"])
    assert manifest["totals"]["train"]["tokens"] == sum(len(r["tokens"]) for r in rows["train"])
    # one global random order: by shuffle key across all shards, buckets in key-range order
    keys = shuffle_keys([r["id"] for r in rows["train"]], np.zeros(len(rows["train"])), seed)
    assert (keys[1:] > keys[:-1]).all()
    assert manifest["mix"]["buckets"]["train"] >= 4 and len({s["file"] for s in manifest["shards"]}) > 4
    assert (np.diff(bucket_of(keys, manifest["mix"]["buckets"]["train"])) >= 0).all()
    sources_in_order = [r["source"] for r in rows["train"]]
    assert sources_in_order != sorted(sources_in_order)  # the sources are interleaved, not concatenated
    # the same command again: nothing to do
    assert mix(tmp_path, cfg).already_done


def test_all_and_upsampling_counts(ray_local, sources, tmp_path):
    cfg = MixConfig([MixSource(str(sources["b"]), parse_spec("all")), MixSource(str(sources["c"]), parse_spec("x2")),
                     MixSource(str(sources["a"]), parse_spec("x1.5"))], name="up", seed=5, bucket_tokens=4000)
    assert mix(tmp_path, cfg).ok
    manifest, rows = read_set(tmp_path / "tokens" / "up")
    got = Counter((r["source"], r["id"], r["copy"]) for r in rows["train"])
    per_doc = Counter((s, i) for s, i, _ in got)
    b, c, a = (source_docs(sources[k]) for k in "bca")
    assert max(got.values()) == 1  # each copy once
    assert {i for (s, i), n in per_doc.items() if s == 0 and n == 1} == set(b["train"])
    assert {i for (s, i), n in per_doc.items() if s == 1 and n == 2} == set(c["train"])
    a_counts = Counter(n for (s, _), n in per_doc.items() if s == 2)
    assert set(a_counts) == {1, 2} and sum(a_counts.values()) == len(a["train"])
    assert 0.3 < a_counts[2] / len(a["train"]) < 0.7  # x1.5: about half get a second copy
    # validation documents go once, whatever the factor
    val = Counter((r["source"], r["id"]) for r in rows["val"])
    assert max(val.values()) == 1 and len(val) == len(a["val"]) + len(b["val"]) + len(c["val"])
    c_entry = manifest["mix"]["sources"][1]
    assert c_entry["realized"]["train"]["tokens"] == 2 * sum(map(len, c["train"].values()))


def test_the_same_document_in_two_sources_appears_once(ray_local, sources, tmp_path):
    twin = tmp_path / "twin"  # the same documents (same ids) under another path
    docs = source_docs(sources["c"])
    write_token_set(twin, {s: list(d.values()) for s, d in docs.items()}, VOCAB, 0,
                    ids={s: list(d) for s, d in docs.items()})
    cfg = MixConfig([MixSource(str(sources["c"]), parse_spec("all")), MixSource(str(twin), parse_spec("all"))],
                    name="dup", seed=1)
    assert mix(tmp_path, cfg).ok
    manifest, rows = read_set(tmp_path / "tokens" / "dup")
    ids = [r["id"] for r in rows["train"]]
    assert len(ids) == len(set(ids)) == len(docs["train"])
    assert manifest["mix"]["duplicates_dropped"] == len(docs["train"]) + len(docs["val"])


def test_refusals_name_the_problem(ray_local, sources, tmp_path):
    other = make_source(tmp_path, "other", 10, 0, 9, vocab=VOCAB + 64)
    cfg = MixConfig([MixSource(str(sources["a"]), parse_spec("all")), MixSource(str(other), parse_spec("all"))])
    with pytest.raises(MixError, match="different tokenizers") as e:
        mix(tmp_path, cfg)
    assert str(sources["a"]) in str(e.value) and str(other) in str(e.value) and "sha256" in str(e.value)
    too_much = MixConfig([MixSource(str(sources["c"]), parse_spec("1"))], name="big", budget=10**7)
    with pytest.raises(MixError, match="upsampling factor"):
        mix(tmp_path, too_much)
    small = MixConfig([MixSource(str(sources["c"]), parse_spec("1"))], name="big", budget=100)
    assert mix(tmp_path, small).ok  # the refused attempt above left only work files, which are not a mix
    with pytest.raises(MixError, match="another token set or mix"):  # a finished mix is replaced on request only
        mix(tmp_path, MixConfig([MixSource(str(sources["c"]), parse_spec("1"))], name="big", budget=200))
    twice = MixConfig([MixSource(str(sources["c"]), parse_spec("all")), MixSource(str(sources["c"]), parse_spec("x2"))])
    with pytest.raises(MixError, match="given twice"):
        mix(tmp_path, twice)


def test_a_refused_or_failed_replacement_leaves_the_finished_mix_whole(ray_local, sources, tmp_path):
    """Issue 24: `mix --force` with a budget a source cannot give is refused after the scan, and by then the
    finished mix must still be there, whole (it was cleared before the refusal)."""
    cfg = MixConfig([MixSource(str(sources["a"]), parse_spec("0.5")), MixSource(str(sources["b"]), parse_spec("0.5"))],
                    name="m", budget=2000, seed=3)
    assert mix(tmp_path, cfg).ok
    folder = tmp_path / "tokens" / "m"
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != "_lock"}
    too_big = MixConfig(cfg.sources, name="m", budget=10**7, seed=3)
    with pytest.raises(MixError, match="should give"):
        mix(tmp_path, too_big, force=True)
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != "_lock"}
    assert after == before
    manifest, rows = read_set(folder)
    assert sum(len(r) for r in rows.values()) == sum(s["documents"] for s in manifest["shards"]) > 0
    # a successful replacement leaves exactly the new mix's shards
    other = MixConfig(cfg.sources, name="m", budget=3000, seed=4)
    assert mix(tmp_path, other, force=True).ok
    manifest, _ = read_set(folder)
    assert sorted(p.name for p in folder.glob("*.parquet")) == sorted(s["file"] for s in manifest["shards"])
    assert manifest["mix"]["seed"] == 4


def test_toml_form_is_the_same_mix(sources, tmp_path):
    f = tmp_path / "mix.toml"
    f.write_text(f'[mix]\nname = "web"\ntokens = "6k"\nseed = 11\n[[mix.source]]\npath = "{sources["a"]}"\n'
                 f'weight = 0.7\n[[mix.source]]\npath = "{sources["b"]}"\nweight = 0.3\n'
                 f'[[mix.source]]\npath = "{sources["c"]}"\nupsample = 2\n')
    cfg = load_mix_toml(str(f), Storage())
    assert cfg == config_from_args([f"{sources['a']}:0.7", f"{sources['b']}:0.3", f"{sources['c']}:x2"], "web",
                                   "6k", 11, None, None)
    f.write_text('[mix]\n[[mix.source]]\npath = "x"\nweight = 1\nall = true\n')
    with pytest.raises(MixError, match="exactly one of"):
        load_mix_toml(str(f), Storage())


def test_object_store_in_and_out_gives_the_local_result(ray_local, s3_server, sources, tmp_path):
    from test_trainer_storage import upload_tree

    storage = Storage()
    bucket = s3_server.bucket(f"mix-{uuid.uuid4().hex[:8]}")
    remote = {k: upload_tree(storage, sources[k], f"{bucket}/in/{k}") for k in "ab"}
    specs = (("a", "0.6"), ("b", "x1.5"))  # b: about 12k train tokens of the 20k
    local_cfg = MixConfig([MixSource(str(sources[k]), parse_spec(v)) for k, v in specs], name="m", budget=20000, seed=4,
                          bucket_tokens=2000)
    s3_cfg = MixConfig([MixSource(remote[k], parse_spec(v)) for k, v in specs], name="m", budget=20000, seed=4,
                       bucket_tokens=2000)
    assert mix(tmp_path, local_cfg).ok and mix(f"{bucket}/out", s3_cfg).ok
    (lm, lrows), (sm, srows) = read_set(tmp_path / "tokens" / "m"), read_set(f"{bucket}/out/tokens/m", storage)
    assert lrows == srows and lm["totals"] == sm["totals"] and [s["file"] for s in lm["shards"]] == \
        [s["file"] for s in sm["shards"]]
    assert not storage.list(f"{bucket}/out/tokens/m/_work", recursive=True)  # work files removed


def _files(tokset: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(tokset.iterdir()) if p.is_file() and p.suffix in (".parquet", ".json")
            and p.name != "_lock"}


def test_sigkill_at_each_pass_then_the_same_command_gives_byte_identical_output(ray_local, tmp_path):
    src = {k: make_source(tmp_path / "src", k, 300, 30, i, docs_per_shard=12) for i, k in enumerate("ab")}
    args = ["mix", "--source", f"{src['a']}:0.6", "--source", f"{src['b']}:0.4", "--tokens", "15k", "--seed", "3",
            "--bucket-tokens", "600", "--name", "m", "--quiet", "--address", ray_local.get_runtime_context().gcs_address]
    clean = tmp_path / "clean"
    assert crawlproc([*args, "--out", str(clean)]) == 0
    expected = _files(clean / "tokens" / "m")
    out = tmp_path / "out"
    work = out / "tokens" / "m" / "_work"
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_DEDUP_LOGS": "0"}
    cmd = [sys.executable, "-m", "pipelines.cli", *args, "--out", str(out)]

    def markers(kind: str) -> int:
        d = work / kind / "_done" if kind != "gather" else out / "tokens" / "m" / "parts"
        return len(list(d.glob("*.json"))) if d.is_dir() else 0

    kills = []
    for kind in ("scan", "scatter", "gather"):
        before = markers(kind)
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while proc.poll() is None and markers(kind) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        alive = proc.poll() is None
        if alive:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append((kind, alive))
    assert [k for k, alive in kills if alive] == ["scan", "scatter", "gather"]  # each kill landed mid-pass
    assert not (out / "tokens" / "m" / "manifest.json").exists()
    final = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert final.returncode == 0, final.stderr[-3000:]
    got = _files(out / "tokens" / "m")
    assert sorted(got) == sorted(expected) and got == expected  # byte for byte, shards and manifest
    assert not work.exists()


def test_trainer_reads_a_mix_and_records_it(ray_local, sources, tmp_path):
    from trainer.train import TrainConfig, run_training

    cfg = MixConfig([MixSource(str(sources["a"]), parse_spec("0.5")), MixSource(str(sources["b"]), parse_spec("0.5"))],
                    name="m", budget=4000, seed=2)
    manifest = mix(tmp_path, cfg).manifest
    run = tmp_path / "run"
    run_training(TrainConfig(tokens=str(tmp_path / "tokens" / "m"), out=str(run), preset="tiny", max_steps=2,
                             batch_size=2, block_size=32, eval_interval=2, eval_iters=1, sample_tokens=0,
                             export=False, device="cpu", eval_tasks=[], eval_refs=[]))
    start = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert start["tokens"]["mix"]["digest"] == manifest["mix"]["digest"]
    assert [s["spec"] for s in start["tokens"]["mix"]["sources"]] == ["0.5", "0.5"]
    config = json.loads((run / "config.json").read_text())
    assert config["tokens"]["mix"]["sources"][0]["realized"] == manifest["mix"]["sources"][0]["realized"]
    assert pq.read_table(tmp_path / "tokens" / "m" / manifest["shards"][0]["file"]).column_names == \
        ["id", "tokens", "source", "copy"]
    # `crawlproc report` shows the mix: sources, weights, realized tokens
    from pipelines.inspect.report import write_report

    path, data = write_report(tmp_path, train_runs=[run])
    (ts,) = data["tokens"]
    assert ts["mix"]["digest"] == manifest["mix"]["digest"]
    html = Path(path).read_text()
    for s in manifest["mix"]["sources"]:
        assert s["uri"] in html and f"{s['realized']['train']['tokens']:,}" in html
    assert "0.500" in html and "budget <b>4,000</b>" in html


def test_rehydration_repeats_each_document_by_its_duplicate_cluster_size(ray_local, tmp_path):
    """FineWeb-2's rehydration: a kept document that stood for a cluster of N goes in 1 (alone), N (2, 3),
    3 (4), 5 (5..99), 8 (100..999) or 1 (1000 and more) times. The sizes come from dedup's records of the
    snapshot the token set was made from; validation documents go once."""
    import pyarrow as pa

    from tokenizer.mix.decide import parse_rehydrate

    src = make_source(tmp_path, "r", 60, 10, seed=9)
    ids = sorted(source_docs(src)["train"])
    sizes = {ids[0]: 2, ids[1]: 3, ids[2]: 4, ids[3]: 7, ids[4]: 150, ids[5]: 1200}
    expected = {ids[0]: 2, ids[1]: 3, ids[2]: 3, ids[3]: 5, ids[4]: 8, ids[5]: 1}  # the README's prose
    snap = tmp_path / "out" / "SNAP"
    (snap / "dedup" / "duplicates").mkdir(parents=True)
    kept = [i for i, n in sizes.items() for _ in range(n - 1)]
    pq.write_table(pa.table({"id": [f"<dropped-{k}>" for k in range(len(kept))], "cluster_id": list(range(len(kept))),
                             "kept_id": kept, "kind": ["minhash"] * len(kept)}),
                   snap / "dedup" / "duplicates" / "part.parquet")
    manifest_path = src / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["inputs"] = [str(snap / "final" / "part.parquet")]
    manifest_path.write_text(json.dumps(manifest))

    cfg = MixConfig([MixSource(str(src), parse_spec("all"), parse_rehydrate("fineweb2"))], name="rh", seed=1,
                    bucket_tokens=4000)
    assert mix(tmp_path, cfg).ok
    out_manifest, rows = read_set(tmp_path / "tokens" / "rh")
    per_doc = Counter(r["id"] for r in rows["train"])
    assert {i: per_doc[i] for i in ids} == {i: expected.get(i, 1) for i in ids}
    assert max(Counter(r["id"] for r in rows["val"]).values()) == 1
    assert out_manifest["mix"]["sources"][0]["rehydrate"] == {"1": 1, "2": 2, "3": 3, "5": 5, "100": 8, "1000": 1}
    with pytest.raises(MixError, match="rehydrate"):
        parse_rehydrate("lots")
