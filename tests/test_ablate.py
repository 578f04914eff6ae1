"""`crawlproc ablate` (pipelines/stages/ablate.py, trainer/ablate.py): arms x seeds trained and scored as
units of the stage runner on a real local Ray; a table per metric with the spread over seeds; exactly once
(a finished arm is never retrained, a driver killed mid-arm is resumed from the arm's last checkpoint, the
kill landing where it must); output in a bucket (moto S3); arms made from WARC files by their recipes, all
tokenized with one shared tokenizer; architectures compared at equal tokens."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from crawlproc.store.layout import Layout
from crawlproc.store.storage import Storage, join
from pipelines.cli import main as crawlproc
from pipelines.stages.ablate import AblateError, AblateSpec, Arm, load_spec, parse_spec, run_ablation
from tokenizer import train_bpe
from tokenizer.formats import tokenizer_files
from tokenizer.tokenset import write_token_set

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def articles() -> list[str]:
    arts = json.loads((DATA / "trainer" / "articles.json").read_text())
    return [arts[k]["articleBody"] for k in sorted(arts)]


def token_sets(out: Path, vocab: int = 600, seed_text: str = "") -> dict[str, Path]:
    """Two arms' token sets under one tokenizer: all articles, and the first half of them."""
    texts = articles()
    tok = train_bpe(texts + ([seed_text] if seed_text else []), vocab, name="t")
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_bytes(tokenizer_files(tok)["tokenizer.json"])
    sets = {}
    for name, docs in (("all", texts), ("half", texts[: len(texts) // 2])):
        enc = [tok.encode(t) for t in docs]
        write_token_set(out / name, {"train": enc[:-2], "val": enc[-2:]}, tok.vocab_size, tok.eot_id,
                        docs_per_shard=8, docs_per_row_group=4, tokenizer_file=out / "tokenizer.json")
        sets[name] = out / name
    return sets


@pytest.fixture(scope="module")
def arms(tmp_path_factory) -> dict[str, Path]:
    return token_sets(tmp_path_factory.mktemp("tokens"))


@pytest.fixture(scope="module")
def small_eval(tmp_path_factory) -> dict:
    """Real bundled items, few of them: two multiple-choice tasks, LAMBADA, one reference document."""
    from crawlproc.evalsuite import REFERENCE_DIR, SUITE_DIR

    d = tmp_path_factory.mktemp("suite")
    for t in ("piqa", "arc_easy", "lambada_openai"):
        (d / f"{t}.jsonl").write_text("".join((SUITE_DIR / f"{t}.jsonl").read_text().splitlines(True)[:12]))
    (d / "pp.jsonl").write_text((REFERENCE_DIR / "pride_and_prejudice.jsonl").read_text().splitlines(True)[0])
    return {"tasks": [str(d / f"{t}.jsonl") for t in ("piqa", "arc_easy", "lambada_openai")], "refs": [str(d / "pp.jsonl")]}


def spec(arms: dict, small_eval: dict, **kw) -> AblateSpec:
    train = {"preset": "tiny", "max_steps": 8, "batch_size": 4, "lr": 3e-3, "eval_interval": 8, "eval_iters": 1,
             "device": "cpu", **kw.pop("train", {})}
    kw = {"seeds": [0, 1], "tasks": small_eval["tasks"], "refs": small_eval["refs"], **kw}
    return AblateSpec(arms=[Arm(name=n, tokens=str(p)) for n, p in arms.items()], train=train, **kw)


def metrics_bytes(out: Path, name: str = "ablation") -> dict[str, bytes]:
    runs = out / "ablate" / name / "runs"
    return {d.name: (d / "metrics.jsonl").read_bytes() for d in sorted(runs.iterdir())}


def events(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def done(ray_local, arms, small_eval, tmp_path_factory):
    out = tmp_path_factory.mktemp("ablate")
    result = run_ablation(str(out), spec(arms, small_eval), progress=False, log=lambda m: None)
    return out, result


def test_every_arm_and_seed_is_trained_scored_and_tabled(done):
    out, result = done
    table = result.table
    assert result.ok and result.trained == 4 and table["units"] == 4 and table["missing"] == []
    assert table["baseline"] == "all" and table["arms"] == ["all", "half"] and table["seeds"] == [0, 1]
    metrics = {t["metric"]: t for t in table["metrics"]}
    assert {"all_tasks/score", "piqa/acc", "piqa/acc_norm", "arc_easy/acc_norm", "lambada_openai/acc",
            "lambada_openai/perplexity", "pp/bpb"} <= set(metrics)
    assert metrics["pp/bpb"]["better"] == "lower" and metrics["piqa/acc"]["better"] == "higher"
    records = {(r["arm"], r["seed"]): r for r in table["records"]}
    for name, t in metrics.items():
        for arm in ("all", "half"):
            values = [records[(arm, s)]["metrics"][name] for s in (0, 1)]
            row = t["arms"][arm]
            assert row["values"] == values and row["mean"] == pytest.approx(statistics.mean(values))
            assert row["std"] == pytest.approx(statistics.stdev(values))
        half, base = t["arms"]["half"], t["arms"]["all"]
        assert half["delta_vs_baseline"] == pytest.approx(half["mean"] - base["mean"])
        assert half["exceeds_spread"] == (abs(half["mean"] - base["mean"]) > max(half["std"], base["std"]))
    # the seeds differ (initialisation and data order), so the spread is real
    assert records[("all", 0)]["metrics"]["pp/bpb"] != records[("all", 1)]["metrics"]["pp/bpb"]
    ab = out / "ablate" / "ablation"
    md = (ab / "table.md").read_text()
    assert "| all |" in md and "| half |" in md and "exceeds spread" in md
    for arm in ("all", "half"):
        for seed in (0, 1):
            run = ab / "runs" / f"{arm}~s{seed}"
            assert json.loads((run / "ckpt" / "latest.json").read_text())["step"] == 8
            assert (run / "ablate_eval.json").is_file() and (run / "hf" / "config.json").is_file()
            assert json.loads((run / "config.json").read_text())["train"]["seed"] == seed
    spec_rec = json.loads((ab / "spec.json").read_text())
    assert spec_rec["tokens_per_unit"] == 8 * 4 * 64 and set(spec_rec["tokens"]) == {"all", "half"}


def test_a_rerun_trains_nothing(done, arms, small_eval):
    out, _ = done
    before = metrics_bytes(out)
    markers = sorted(p.name for p in (out / "ablate" / "ablation" / "_done").iterdir())
    again = run_ablation(str(out), spec(arms, small_eval), progress=False, log=lambda m: None)
    assert again.trained == 0 and again.skipped == 4 and again.table["units"] == 4
    assert metrics_bytes(out) == before
    assert sorted(p.name for p in (out / "ablate" / "ablation" / "_done").iterdir()) == markers


def test_a_new_evaluation_rescores_without_training(ray_local, arms, small_eval, tmp_path):
    run_ablation(str(tmp_path), spec(arms, small_eval), progress=False, log=lambda m: None)
    before = metrics_bytes(tmp_path)
    again = run_ablation(str(tmp_path), spec(arms, small_eval, limit=5), progress=False, log=lambda m: None)
    assert again.trained == 4 and metrics_bytes(tmp_path) == before  # scored again, not trained again
    assert all(r["trained"] is False and r["resumed_from_step"] == 8 for r in again.table["records"])
    evals = json.loads((tmp_path / "ablate" / "ablation" / "runs" / "all~s0" / "ablate_eval.json").read_text())
    assert evals["tasks"][0]["n"] == 5
    # settings the weights do not depend on (logging, checkpoints, the loop's benchmarks): nothing to redo
    quiet = run_ablation(str(tmp_path), spec(arms, small_eval, limit=5, train={"log_interval": 1, "ckpt_interval": 2,
                                                                             "eval_tasks": ["piqa"]}),
                         progress=False, log=lambda m: None)
    assert quiet.trained == 0 and quiet.skipped == 4 and metrics_bytes(tmp_path) == before
    # other training settings: that arm starts over (its old checkpoints are not continued with new settings)
    third = run_ablation(str(tmp_path), spec(arms, small_eval, limit=5, train={"lr": 1e-3}), progress=False,
                         log=lambda m: None)
    assert third.trained == 4 and all(r["trained"] and r["resumed_from_step"] == 0 for r in third.table["records"])
    assert [e.get("event") for e in events(tmp_path / "ablate" / "ablation" / "runs" / "half~s1")
            if e.get("event")] == ["start"]


def test_architectures_are_compared_at_equal_tokens(ray_local, arms, small_eval, tmp_path):
    s = AblateSpec(arms=[Arm(name="gpt2", tokens=str(arms["all"])),
                         Arm(name="llama", tokens=str(arms["all"]), train={"arch": "llama"}),
                         Arm(name="qwen3", tokens=str(arms["all"]), train={"arch": "qwen3"})],
                   seeds=[0], train={"preset": "tiny", "max_steps": 4, "batch_size": 2, "device": "cpu"},
                   tasks=small_eval["tasks"][:1], refs=small_eval["refs"])
    result = run_ablation(str(tmp_path), s, progress=False, log=lambda m: None)
    assert result.ok and result.table["units"] == 3
    runs = tmp_path / "ablate" / "ablation" / "runs"
    archs = {a: json.loads((runs / f"{a}~s0" / "hf" / "config.json").read_text())["architectures"][0]
             for a in ("gpt2", "llama", "qwen3")}
    assert archs == {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM"}
    tokens = {json.loads((runs / f"{a}~s0" / "config.json").read_text())["train"]["max_steps"] for a in archs}
    assert tokens == {4}
    with pytest.raises(AblateError, match="token budget"):
        run_ablation(str(tmp_path), AblateSpec(arms=[Arm(name="a", tokens=str(arms["all"])),
                                                     Arm(name="b", tokens=str(arms["all"]), train={"max_steps": 9})],
                                               seeds=[0]), progress=False, log=lambda m: None)


def test_arms_must_share_one_tokenizer(ray_local, arms, small_eval, tmp_path):
    other = token_sets(tmp_path / "other", vocab=520)
    s = AblateSpec(arms=[Arm(name="a", tokens=str(arms["all"])), Arm(name="b", tokens=str(other["half"]))],
                   seeds=[0], train={"max_steps": 2}, tasks=small_eval["tasks"][:1], refs=[])
    with pytest.raises(AblateError, match="different tokenizers"):
        run_ablation(str(tmp_path / "out"), s, progress=False, log=lambda m: None)


@pytest.mark.parametrize("data, words", [
    ({"arms": [{"name": "a", "tokens": "x"}]}, "at least 2 arms"),
    ({"arms": [{"name": "a", "tokens": "x"}, {"name": "a", "tokens": "y"}]}, "unique"),
    ({"arms": [{"name": "a", "tokens": "x", "recipe": "fineweb"}, {"name": "b", "tokens": "y"}]}, "either"),
    ({"arms": [{"name": "a", "recipe": "fineweb"}, {"name": "b", "tokens": "y"}]}, "needs `snapshot`"),
    ({"arms": [{"name": "../a", "tokens": "x"}, {"name": "b", "tokens": "y"}]}, "bad arm name"),
    ({"arms": [{"name": "a", "tokens": "x", "colour": 1}, {"name": "b", "tokens": "y"}]}, "unknown key"),
    ({"ablate": {"seeds": [1, 1]}, "arms": [{"name": "a", "tokens": "x"}, {"name": "b", "tokens": "y"}]}, "seeds"),
    ({"ablate": {"tasks": ["hellaswg"]}, "arms": [{"name": "a", "tokens": "x"}, {"name": "b", "tokens": "y"}]},
     "unknown task"),
    ({"train": {"presett": "tiny"}, "arms": [{"name": "a", "tokens": "x"}, {"name": "b", "tokens": "y"}]},
     "train.presett"),
    ({"train": {"seed": 3}, "arms": [{"name": "a", "tokens": "x"}, {"name": "b", "tokens": "y"}]}, "train.seed"),
    ({"arms": [{"name": "a", "tokens": "x", "train": {"arch": "rwkv"}}, {"name": "b", "tokens": "y"}]}, "arch"),
    ({"extra": {}, "arms": []}, "unknown table"),
])
def test_a_bad_spec_is_refused_naming_what_is_wrong(data, words):
    with pytest.raises(AblateError, match=words.replace("`", ".").replace("[", r"\[")):
        parse_spec(data)


def test_the_command_says_what_is_wrong_in_one_line(tmp_path, capsys):
    (tmp_path / "s.toml").write_text('[ablate]\nseeds = 2\n[[arms]]\nname = "a"\ntokens = "x"\n')
    assert crawlproc(["ablate", "--out", str(tmp_path / "o"), "--spec", str(tmp_path / "s.toml")]) == 2
    err = capsys.readouterr().err
    assert "at least 2 arms" in err and "Traceback" not in err
    assert crawlproc(["ablate", "--out", str(tmp_path / "o"), "--arm", "a"]) == 2
    assert "NAME=SOURCE" in capsys.readouterr().err


def test_spec_file_paths_are_relative_to_the_file(tmp_path, arms):
    d = tmp_path / "specs"
    d.mkdir()
    (d / "tok").symlink_to(arms["all"])
    (d / "s.toml").write_text('[ablate]\nseeds = 3\n[train]\npreset = "tiny"\n[[arms]]\nname = "a"\ntokens = "tok"\n'
                              '[[arms]]\nname = "b"\ntokens = "tok"\ntrain = {arch = "llama"}\n')
    s = load_spec(str(d / "s.toml"))
    assert s.seeds == [0, 1, 2] and s.arms[0].tokens == str(d / "tok") and s.arms[1].train == {"arch": "llama"}


def test_ablate_limit_is_items_per_task_and_files_is_the_arms_file_limit():
    """[ablate] limit was taken as every snapshot arm's file limit, so the evaluation scored every item."""
    s = parse_spec({"ablate": {"limit": 200, "ref_limit": 10, "files": 3, "warcs": ["w/*.warc.gz"]},
                    "train": {"preset": "tiny"},
                    "arms": [{"name": "a", "recipe": "fineweb"}, {"name": "b", "recipe": "fineweb"}]})
    ev = s.eval_spec()
    assert (ev["limit"], ev["ref_limit"]) == (200, 10)
    assert [(a.files, a.warcs) for a in s.arms] == [(3, ["w/*.warc.gz"])] * 2


# --- exactly once, killed --------------------------------------------------------------------------------


@pytest.mark.slow  # ~3 min on 2 busy cores: two runs of the command, 4 units of 60 steps
def test_a_driver_killed_mid_arm_resumes_from_the_checkpoint_and_retrains_no_finished_arm(
        ray_local, arms, small_eval, tmp_path):
    """SIGKILL `crawlproc ablate` once one unit is finished and another is mid-training (a checkpoint, no
    marker). The same command then finishes: the finished unit is untouched, the interrupted one continues from
    its checkpoint (a `resume` event at that step, every step logged once), and the table has every unit."""
    out = tmp_path / "out"
    ab = out / "ablate" / "kill"
    spec_file = tmp_path / "kill.toml"
    spec_file.write_text(
        f'[ablate]\nname = "kill"\nseeds = 2\ntasks = {json.dumps(small_eval["tasks"][:1])}\n'
        f'refs = {json.dumps(small_eval["refs"])}\n'
        '[train]\npreset = "tiny"\nmax_steps = 60\nbatch_size = 4\nckpt_interval = 5\ndevice = "cpu"\n'
        f'[[arms]]\nname = "all"\ntokens = "{arms["all"]}"\n[[arms]]\nname = "half"\ntokens = "{arms["half"]}"\n')
    cmd = [sys.executable, "-m", "pipelines.cli", "ablate", "--out", str(out), "--spec", str(spec_file), "--quiet",
           "--address", ray_local.get_runtime_context().gcs_address]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_DEDUP_LOGS": "0", "OMP_NUM_THREADS": "1"}

    def finished() -> set[str]:
        d = ab / "_done"
        return {p.name.split(".")[0] for p in d.iterdir()} if d.is_dir() else set()

    def mid_training() -> dict[str, int]:
        """Units with a checkpoint short of the last step and no marker: {unit: checkpoint step}."""
        runs = ab / "runs"
        out_ = {}
        for run in runs.iterdir() if runs.is_dir() else []:
            latest = run / "ckpt" / "latest.json"
            if run.name not in finished() and latest.is_file():
                try:
                    step = json.loads(latest.read_text())["step"]
                except (ValueError, KeyError):
                    continue
                if 0 < step < 60:
                    out_[run.name] = step
        return out_

    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 400
    while proc.poll() is None and time.monotonic() < deadline and not (finished() and mid_training()):
        time.sleep(0.05)
    alive = proc.poll() is None
    done_at_kill, mid_at_kill = finished(), mid_training()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert alive and done_at_kill and mid_at_kill, (alive, done_at_kill, mid_at_kill, proc.stderr.read()[-2000:])
    time.sleep(3)  # the dead driver's tasks are cancelled by Ray (the cluster is the test session's)
    finished_runs = {u: (ab / "runs" / u / "metrics.jsonl").read_bytes() for u in done_at_kill}
    markers = {p.name: p.read_bytes() for p in (ab / "_done").iterdir()}

    final = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert final.returncode == 0, final.stderr[-3000:]
    table = json.loads((ab / "table.json").read_text())
    assert table["units"] == 4 and table["missing"] == []
    for unit, data in finished_runs.items():  # never trained again, its marker untouched
        assert (ab / "runs" / unit / "metrics.jsonl").read_bytes() == data
    for name, data in markers.items():
        assert (ab / "_done" / name).read_bytes() == data
    records = {f"{r['arm']}~s{r['seed']}": r for r in table["records"]}
    for unit, step in mid_at_kill.items():
        ev = events(ab / "runs" / unit)
        resumes = [e["step"] for e in ev if e.get("event") == "resume"]
        assert resumes and resumes[0] >= step, (unit, step, resumes)  # continued from a checkpoint, not step 0
        assert records[unit]["resumed_from_step"] >= step
        steps = [e["step"] for e in ev if "train_loss" in e]
        assert steps == sorted(set(steps)) and steps[-1] == 60  # every step once
        assert [e.get("event") for e in ev if e.get("event")].count("start") == 1


# --- object storage --------------------------------------------------------------------------------------


def test_the_ablation_lives_in_a_bucket(ray_local, s3_server, arms, small_eval):
    root = s3_server.bucket(f"abl-{uuid.uuid4().hex[:8]}") + "/runs"
    s = spec(arms, small_eval, seeds=[0], tasks=small_eval["tasks"][:1])
    first = run_ablation(root, s, progress=False, log=lambda m: None)
    assert first.ok and first.trained == 2
    st = Storage()
    ab = Layout(root).ablation("ablation")
    assert st.read_json(ab.table_uri)["units"] == 2 and st.exists(ab.table_md_uri)
    for arm in ("all", "half"):
        run = ab.run(arm, 0)
        assert st.read_json(join(run, "ckpt", "latest.json"))["step"] == 8
        assert st.exists(join(run, "hf", "model.safetensors")) and st.exists(join(run, "ablate_eval.json"))
    again = run_ablation(root, s, progress=False, log=lambda m: None)
    assert again.trained == 0 and again.skipped == 2
    assert crawlproc(["report", "--out", root]) == 0
    html = st.read_bytes(join(root, "report.html")).decode()
    assert 'data-chart="ablate:ablation:piqa/acc_norm"' in html


# --- arms made from WARC files by their recipes -----------------------------------------------------------


def test_recipe_arms_are_processed_then_tokenized_with_one_shared_tokenizer(ray_local, small_eval, tmp_path):
    """Two recipes over the same real WARC files: FineWeb's filters (demo sizes) and extraction only. Each arm
    has its own output root; one tokenizer is trained on an even sample of both and encodes both."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "extract_only.toml").write_text(
        '[language]\nkeep = []\n[gopher_repetition]\nenabled = false\n[gopher_quality]\nenabled = false\n'
        '[c4]\nenabled = false\n[fineweb_quality]\nenabled = false\n[dedup]\nenabled = false\n'
        '[tokenize]\nsource = "docs"\n[url_filter]\nenabled = false\n')
    warcs = [str(DATA / "warc" / "dolma_sample-0000.warc.gz"), str(DATA / "warc" / "dolma_sample-0001.warc.gz")]
    s = AblateSpec(arms=[Arm(name="fineweb", recipe="demo", warcs=warcs, snapshot="local"),
                         Arm(name="raw", recipe=str(recipes / "extract_only.toml"), warcs=warcs, snapshot="local")],
                   seeds=[0, 1], train={"preset": "tiny", "max_steps": 4, "batch_size": 2, "device": "cpu"},
                   tasks=small_eval["tasks"][:1], refs=small_eval["refs"], vocab_size=400, sample_bytes=200_000)
    result = run_ablation(str(tmp_path / "out"), s, progress=False, log=lambda m: None)
    assert result.ok and result.table["units"] == 4
    ab = tmp_path / "out" / "ablate" / "ablation"
    shared = (ab / "tokenizer" / "tokenizer.json").read_bytes()
    import hashlib

    for arm in ("fineweb", "raw"):
        manifest = json.loads((ab / "arms" / arm / "tokens" / "ablate" / "manifest.json").read_text())
        assert manifest["tokenizer"]["sha256"] == hashlib.sha256(shared).hexdigest()
    tokens = result.table["tokens"]
    assert tokens["raw"]["train_tokens"] > tokens["fineweb"]["train_tokens"] > 0  # no filters keep more
    kept = {arm: sum(json.loads(p.read_text())["stats"]["kept"]  # each file's commit marker holds its counts
                     for p in (ab / "arms" / arm / "local" / "_done").iterdir())
            for arm in ("fineweb", "raw")}
    assert kept["raw"] > kept["fineweb"]
