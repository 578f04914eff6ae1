"""`crawlproc run` with classifiers in the recipe: extract -> dedup -> classify -> tokenize on a mini Common
Crawl served on 127.0.0.1, the token shards holding exactly the documents the classifier kept."""

from __future__ import annotations

import json
import textwrap

import pyarrow.parquet as pq

from classify_data import pages_split_fixture  # noqa: F401 -- the pages_split fixture
from crawlproc.classify.train import TrainParams, train_classifier
from crawlproc.recipe import recipe_from_dict
from pipelines.cli import main as cli_main
from pipelines.demo.minicc import MiniCCServer, build_minicc

SNAP = "CC-MAIN-2024-10"


def ids(folder) -> set[str]:
    return {i for f in sorted(folder.glob("*.parquet")) for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()}


def test_run_classifies_after_dedup_and_tokenizes_what_was_kept(ray_local, tmp_path, pages_split, capsys):
    train, _ = pages_split
    train_classifier([p.article for p in train], [n for p in train for n in p.negatives], [], str(tmp_path / "m"),
                     TrainParams(dim=16, bucket=20_000), log=lambda _m: None)
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(textwrap.dedent(f"""
        [extract]
        engine = "resiliparse"
        timeout_s = 60.0

        [tokenize]
        vocab_size = 400
        sample_bytes = 2_000_000

        [classifiers.quality]
        kind = "fasttext"
        model = "{tmp_path / 'm' / 'model.bin'}"
        keep_fraction = 0.5
    """))
    mini = build_minicc(tmp_path / "minicc", snapshot=SNAP, files=2)
    out = tmp_path / "out"
    with MiniCCServer(mini.root) as srv:
        rc = cli_main(["run", "--snapshot", SNAP, "--base-url", srv.base_url, "--out", str(out), "--recipe",
                       str(recipe), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    snap = out / SNAP
    final, kept, removed = ids(snap / "final"), ids(snap / "classified"), ids(snap / "classified_removed")
    assert kept | removed == final and not kept & removed and 0 < len(kept) < len(final)
    encoded = set()
    manifest = json.loads((out / "tokens" / "bpe" / "manifest.json").read_text())
    for shard in manifest["shards"]:
        encoded |= set(pq.read_table(out / "tokens" / "bpe" / shard["file"], columns=["id"]).column("id").to_pylist())
    assert encoded == kept  # exactly what the classifier kept, nothing of final/ beside it
    recorded = json.loads((snap / "recipe.json").read_text())
    assert recipe_from_dict(recorded).classifiers["quality"].keep_fraction == 0.5
