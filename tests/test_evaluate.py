"""Benchmark scoring (trainer/evaluate.py) against lm-eval-harness itself, item by item, on our hf/ exports of
briefly trained models: the same log-likelihoods, acc, acc_norm, greedy accuracy, perplexity and bits per byte,
from both our checkpoint (our model + our tokenizer) and the hf/ folder (transformers). Plus the pieces:
tokenization of (context, continuation) pairs, rolling windows, few-shot prefixes, and `crawlproc eval`.

lm-eval is a dev dependency (pyproject.toml [dev]); without it the agreement tests are skipped, saying so.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_trainer_data import build_tokens

from crawlproc.evalsuite import REFERENCE_DIR, SUITE_DIR, load_reference, load_task, write_lm_eval_tasks
from pipelines.cli import main as crawlproc
from trainer.evaluate import LM, Request, encode_pair, fewshot_prefix, prepare_task, rolling_windows, score_requests
from trainer.loadmodel import load_lm
from trainer.train import TrainConfig, run_training

ROOT = Path(__file__).resolve().parents[1]
ITEMS = 30  # per task: enough items for near ties, few enough for a CPU test
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokens(tmp_path_factory) -> Path:
    return build_tokens(tmp_path_factory.mktemp("tokens") / "articles")


def train(tokens: Path, out: Path, arch: str = "gpt2", steps: int = 30) -> Path:
    """A briefly trained model whose window (256) holds every continuation of the items (lm-eval refuses
    longer ones); exported to out/hf."""
    run_training(TrainConfig(tokens=str(tokens), out=str(out), preset="tiny", arch=arch, block_size=256,
                             batch_size=4, max_steps=steps, lr=3e-3, eval_interval=steps, eval_iters=1,
                             sample_tokens=0, device="cpu", eval_tasks=[], eval_refs=[]))
    return out


@pytest.fixture(scope="module")
def gpt2_run(tokens, tmp_path_factory) -> Path:
    return train(tokens, tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def small_suite(tmp_path_factory) -> tuple[list[str], list[str]]:
    """The first ITEMS items of every bundled task (and its few-shot file), the first 2 documents of every
    reference set: real items, small files."""
    d = tmp_path_factory.mktemp("suite")
    tasks, refs = [], []
    for path in sorted(SUITE_DIR.glob("*.jsonl")):
        lines = path.read_text().splitlines(True)
        keep = lines if path.name.endswith(".fewshot.jsonl") else lines[:ITEMS]
        (d / path.name).write_text("".join(keep))
        if not path.name.endswith(".fewshot.jsonl"):
            tasks.append(str(d / path.name))
    for path in sorted(REFERENCE_DIR.glob("*.jsonl")):
        (d / path.name).write_text("".join(path.read_text().splitlines(True)[:2]))
        refs.append(str(d / path.name))
    return tasks, refs


def ours(target: Path, task_paths: list[str], fewshot: int = 0) -> dict[str, dict]:
    from trainer.evaluate import EvalSpec, Evaluator

    lm = load_lm(str(target)).lm
    spec = EvalSpec([p for p in task_paths if p.endswith(".jsonl") and "reference" not in p], [], None, None, fewshot)
    result = Evaluator(spec, lm).run(keep_items=True)
    return {t["task"]: t for t in result["tasks"]}


def lm_eval_run(hf: Path, task_paths: list[str], ref_paths: list[str], tmp: Path, fewshot: int = 0) -> dict:
    lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install -e '.[dev]')")
    from lm_eval.tasks import TaskManager

    names = write_lm_eval_tasks(task_paths, ref_paths, tmp)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={hf},dtype=float32", tasks=names,
                                   task_manager=TaskManager(include_path=str(tmp)), num_fewshot=fewshot,
                                   log_samples=True, batch_size=8, device="cpu")


def compare(theirs: dict, mine: dict[str, dict]) -> dict:
    """Item by item: max |log-likelihood difference| and how many items agree on each metric."""
    report = {}
    for name, t in mine.items():
        samples = sorted(theirs["samples"][f"crawlproc_{name}"], key=lambda s: s["doc_id"])
        assert len(samples) == len(t["items"]) == t["n"]
        diffs, agree = [], {"acc_items": 0, "acc_norm_items": 0}
        for s, item in zip(samples, t["items"]):
            their_lls = [r[0] for r in s["filtered_resps"]]
            my_lls = item["lls"] if "lls" in item else [item["ll"]]
            diffs += [abs(a - b) for a, b in zip(their_lls, my_lls, strict=True)]
            agree["acc_items"] += s["acc"] == item["acc"]
            agree["acc_norm_items"] += s.get("acc_norm") == item.get("acc_norm")
        summary = theirs["results"][f"crawlproc_{name}"]
        report[name] = {"items": len(samples), "max_abs_ll_diff": max(diffs), **agree,
                        "acc": (t["acc"], summary["acc,none"])}
        if "perplexity,none" in summary:
            report[name]["perplexity"] = (t["perplexity"], summary["perplexity,none"])
    return report


def assert_agree(report: dict) -> None:
    """Every item: the same log-likelihoods (float32 rounding), the same acc and acc_norm; the same totals."""
    for name, r in report.items():
        assert r["max_abs_ll_diff"] < 2e-4, (name, r)
        assert r["acc_items"] == r["acc_norm_items"] == r["items"], (name, r)
        assert r["acc"][0] == pytest.approx(r["acc"][1], abs=1e-12), (name, r)
        if "perplexity" in r:
            assert r["perplexity"][0] == pytest.approx(r["perplexity"][1], rel=1e-4), (name, r)


def test_scores_agree_with_lm_eval_item_by_item(gpt2_run, small_suite, tmp_path):
    """Every bundled task (ITEMS items each) and both reference sets, 0-shot; the checkpoint (our model, our
    tokenizer) and the hf/ export (transformers, AutoTokenizer) against lm-eval on the hf/ export."""
    tasks, refs = small_suite
    theirs = lm_eval_run(gpt2_run / "hf", tasks, refs, tmp_path / "yaml")
    for target in (gpt2_run, gpt2_run / "hf"):
        report = compare(theirs, ours(target, tasks))
        print(f"\nlm-eval agreement ({target.name}):", json.dumps(report, indent=1))
        assert_agree(report)
        # bits per byte, from lm-eval's loglikelihood_rolling
        from trainer.evaluate import prepare_reference, score_references

        lm = load_lm(str(target)).lm
        for ref in refs:
            mine = score_references(lm, [prepare_reference(lm, load_reference(ref))])[0]
            their = theirs["results"][f"crawlproc_{Path(ref).stem}"]["bits_per_byte,none"]
            print(f"bits per byte {Path(ref).stem}: ours {mine['bits_per_byte']:.6f}, lm-eval {their:.6f}")
            assert mine["bits_per_byte"] == pytest.approx(their, rel=1e-5)


def test_fewshot_scores_agree_with_lm_eval(gpt2_run, small_suite, tmp_path):
    tasks = [p for p in small_suite[0] if Path(p).stem in ("hellaswag", "arc_easy")]
    theirs = lm_eval_run(gpt2_run / "hf", tasks, [], tmp_path / "yaml", fewshot=2)
    report = compare(theirs, ours(gpt2_run, tasks, fewshot=2))
    print("\nlm-eval agreement, 2-shot:", json.dumps(report, indent=1))
    assert_agree(report)


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_other_architectures_agree_with_lm_eval_through_their_export(tokens, small_suite, tmp_path, arch):
    """Rotary + RMSNorm + SwiGLU export as LlamaForCausalLM, with QK-norm as Qwen3ForCausalLM: lm-eval runs the
    transformers class, we run our model: the same scores."""
    run = train(tokens, tmp_path / "run", arch=arch, steps=15)
    assert json.loads((run / "hf" / "config.json").read_text())["architectures"] == [
        {"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM"}[arch]]
    tasks = [p for p in small_suite[0] if Path(p).stem in ("piqa", "lambada_openai")]
    report = compare(lm_eval_run(run / "hf", tasks, [], tmp_path / "yaml"), ours(run, tasks))
    print(f"\nlm-eval agreement, {arch}:", json.dumps(report, indent=1))
    assert_agree(report)


# --- the pieces, each against lm-eval's rule --------------------------------------------------------------


class CharLM:
    """One id per character (id = code point % 100 + 1), eot 0: easy to reason about."""

    @staticmethod
    def lm(max_length: int = 8) -> LM:
        return LM(lambda s: [ord(c) % 100 + 1 for c in s], lambda idx: None, max_length, 0)


def test_trailing_whitespace_of_the_context_moves_to_the_continuation():
    lm = CharLM.lm()
    r = encode_pair(lm, "Answer:\n", "Paris")
    assert r.ctx == lm.encode("Answer:") and r.cont == lm.encode("\nParis")
    empty = encode_pair(lm, "", "Hi")
    assert empty.ctx == [0] and empty.cont == lm.encode("Hi")


def test_rolling_windows_match_lm_eval_and_cover_every_token_once():
    lm_utils = pytest.importorskip("lm_eval.utils", reason="lm-eval is not installed")
    for n, L in [(1, 4), (4, 4), (5, 4), (17, 4), (30, 7), (64, 64), (65, 64)]:
        toks = list(range(100, 100 + n))
        mine = rolling_windows(toks, 0, L)
        theirs = [lm_utils.make_disjoint_window(w)
                  for w in lm_utils.get_rolling_token_windows(toks, prefix_token=0, max_seq_len=L, context_len=1)]
        # lm-eval scores (ctx + cont)[-(L+1):][:-1]: compare what the model is fed and what it predicts
        fed = [((r.ctx + r.cont)[-(L + 1):][:-1], r.cont) for r in mine]
        assert fed == [((c + p)[-(L + 1):][:-1], p) for c, p in theirs]
        assert [t for r in mine for t in r.cont] == toks and all(len(x) <= L for x, _ in fed)


def test_a_continuation_longer_than_the_window_is_scored_in_pieces():
    """lm-eval refuses it; we score each piece from the tokens before it, so a tiny-window model still gets a
    finite score, equal to the whole when the window holds everything."""
    torch.manual_seed(0)
    from trainer.evaluate import lm_from_model
    from trainer.model import GPT
    from trainer.presets import GPTConfig

    model = GPT(GPTConfig(vocab_size=128, block_size=64, n_layer=1, n_head=2, n_embd=16)).eval()
    enc = CharLM.lm().encode
    req = Request(enc("context: "), enc("a continuation of thirty chars"))
    big = score_requests(lm_from_model(model, enc, 0), [req])[0]
    small = lm_from_model(model, enc, 0)
    small.max_length = 8
    piece = score_requests(small, [req])[0]
    assert math.isfinite(piece[0]) and piece[0] != pytest.approx(big[0])  # less context, another number
    # by hand: the whole, token by token, from the full left context (window 64 holds it all)
    ids = torch.tensor([req.ctx + req.cont])
    logp = torch.log_softmax(model(ids[:, :-1])[0].float(), -1)[0]
    by_hand = sum(logp[len(req.ctx) - 1 + j, t].item() for j, t in enumerate(req.cont))
    assert big[0] == pytest.approx(by_hand, abs=1e-4)


def test_fewshot_prefix_is_context_and_gold_answer_per_example(tmp_path):
    rows = [{"id": f"s{i}", "context": f"Q{i}:", "choices": [" no", " yes"], "gold": 1} for i in range(3)]
    (tmp_path / "t.fewshot.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "t.jsonl").write_text(json.dumps({**rows[0], "id": "x"}) + "\n")
    task = load_task(tmp_path / "t.jsonl")
    assert fewshot_prefix(task, 2) == "Q0: yes\n\nQ1: yes\n\n" and fewshot_prefix(task, 0) == ""
    with pytest.raises(ValueError, match="few-shot"):
        fewshot_prefix(task, 4)
    p = prepare_task(CharLM.lm(64), task, fewshot=1)
    assert p.requests[0][1].ctx == CharLM.lm().encode("Q0: yes\n\nQ0:")


# --- the command ------------------------------------------------------------------------------------------


def test_eval_command_scores_a_run_and_its_export_alike(gpt2_run, small_suite, tmp_path, capsys):
    tasks, refs = small_suite
    args = ["--tasks", ",".join(tasks[:2]), "--refs", refs[0], "--items", "--device", "cpu"]
    assert crawlproc(["eval", str(gpt2_run), "--out", str(tmp_path / "a.json"), *args]) == 0
    out = capsys.readouterr().out
    assert "acc_norm" in out and "bits per byte" in out
    assert crawlproc(["eval", str(gpt2_run / "hf"), "--out", str(tmp_path / "b.json"), *args]) == 0
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert a["model"]["kind"] == "checkpoint" and b["model"]["kind"] == "hf"
    for ta, tb in zip(a["tasks"], b["tasks"]):
        assert [i["acc_norm"] for i in ta["items"]] == [i["acc_norm"] for i in tb["items"]]
        assert ta["sha256"] == tb["sha256"] == load_task(tasks[a["tasks"].index(ta)]).sha256
    assert a["references"][0]["bits_per_byte"] == pytest.approx(b["references"][0]["bits_per_byte"], rel=1e-5)


def test_eval_command_refuses_bad_input_with_one_line(gpt2_run, tmp_path, capsys):
    assert crawlproc(["eval", str(tmp_path / "nothing")]) == 2
    assert "neither a checkpoint" in capsys.readouterr().err
    assert crawlproc(["eval", str(gpt2_run), "--tasks", "hellaswg", "--refs", "none"]) == 2
    assert "unknown task 'hellaswg'" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "context": "x", "choices": [" a"], "gold": 3}\n')
    assert crawlproc(["eval", str(gpt2_run), "--tasks", str(bad), "--refs", "none"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1" in err and "gold" in err and "Traceback" not in err


def test_eval_under_torchrun_scores_slices_and_gathers_them(gpt2_run, small_suite, tmp_path):
    """Two gloo processes, each scoring half of the items and documents: the same result as one process."""
    tasks, refs = small_suite
    args = ["eval", str(gpt2_run), "--tasks", ",".join(tasks[:3]), "--refs", refs[1], "--items", "--device", "cpu"]
    assert crawlproc([*args, "--out", str(tmp_path / "one.json")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "pipelines.cli", *args, "--out", str(tmp_path / "two.json")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = (json.loads((tmp_path / n).read_text()) for n in ("one.json", "two.json"))
    assert two["world_size"] == 2 and one["world_size"] == 1
    for a, b in zip(one["tasks"], two["tasks"]):
        assert [i["id"] for i in a["items"]] == [i["id"] for i in b["items"]]  # every item once, in order
        assert [i["acc"] for i in a["items"]] == [i["acc"] for i in b["items"]]
        mine = [ll for i in a["items"] for ll in i.get("lls", [i.get("ll")])]
        theirs = [ll for i in b["items"] for ll in i.get("lls", [i.get("ll")])]
        assert mine == pytest.approx(theirs, abs=1e-4)
    assert one["references"][0]["tokens"] == two["references"][0]["tokens"]
    assert one["references"][0]["bits_per_byte"] == pytest.approx(two["references"][0]["bits_per_byte"], rel=1e-6)


# --- in the training loop ---------------------------------------------------------------------------------


def bench_records(run: Path) -> list[dict]:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in recs if r.get("event") == "bench"]


def eval_final(run: Path, tasks: list[str], refs: list[str], limit: int, out: Path) -> dict:
    assert crawlproc(["eval", str(run), "--tasks", ",".join(tasks), "--refs", ",".join(refs), "--limit", str(limit),
                      "--device", "cpu", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def assert_same_scores(record: dict, result: dict) -> None:
    for t in result["tasks"]:
        got = record["tasks"][t["task"]]
        assert got["n"] == t["n"] and got["acc"] == pytest.approx(t["acc"], abs=1e-12)
        for k in ("acc_norm", "perplexity"):
            if k in t:
                assert got[k] == pytest.approx(t[k], rel=1e-4)
    for r in result["references"]:
        assert record["bpb"][r["reference"]] == pytest.approx(r["bits_per_byte"], rel=1e-5)


def test_benchmarks_in_the_training_loop_are_the_eval_commands_scores(tokens, small_suite, tmp_path):
    tasks = [p for p in small_suite[0] if Path(p).stem in ("piqa", "lambada_openai", "hellaswag")]
    refs = small_suite[1][:1]
    run = tmp_path / "run"
    summary = run_training(TrainConfig(tokens=str(tokens), out=str(run), preset="tiny", max_steps=6, batch_size=4,
                                       lr=3e-3, eval_interval=2, eval_iters=1, sample_tokens=0, device="cpu",
                                       eval_tasks=tasks, eval_refs=refs, eval_limit=12, eval_ref_limit=0,
                                       eval_bench_interval=3))
    recs = bench_records(run)
    assert [r["step"] for r in recs] == [3, 6]  # eval_bench_interval; the val loss keeps eval_interval
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()
            if "val_loss" in x] == [2, 4, 6]
    assert set(recs[0]["tasks"]) == {"piqa", "lambada_openai", "hellaswag"} and set(recs[0]["bpb"]) == {Path(refs[0]).stem}
    assert recs[0]["bpb"] != recs[1]["bpb"]  # scored on the model as it is at each step
    assert summary["eval"]["tasks"][0]["n"] == 12
    assert json.loads((run / "eval.json").read_text())["step"] == 6
    # the loop's last record is what `crawlproc eval` says of the final checkpoint
    assert_same_scores(recs[-1], eval_final(run, tasks, refs, 12, tmp_path / "final.json"))
    # the report draws each benchmark over the steps, bits per byte, and the last evaluation's table
    from pipelines.inspect.report import write_report

    (tmp_path / "empty").mkdir()
    where, data = write_report(str(tmp_path / "empty"), train_runs=[str(run)])
    html = Path(where).read_text()
    for chart in ("bench:run:piqa", "bench:run:hellaswag", "bench:run:lambada_openai", "bpb:run"):
        assert f'data-chart="{chart}"' in html
    (r,) = data["training"]
    assert r["benchmarks"]["tasks"]["piqa"]["acc_norm"] == [(3.0, recs[0]["tasks"]["piqa"]["acc_norm"]),
                                                            (6.0, recs[1]["tasks"]["piqa"]["acc_norm"])]
    assert "Evaluation (eval.json" in html and r["eval"]["step"] == 6


def test_benchmarks_in_a_ddp_training_loop_gather_every_rank(tokens, small_suite, tmp_path):
    """torchrun, 2 gloo processes: each scores half the items at each eval; the record holds them all and
    equals a one-process `crawlproc eval` of the same final weights."""
    tasks = [p for p in small_suite[0] if Path(p).stem in ("arc_easy", "lambada_openai")]
    refs = small_suite[1][1:]
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "trainer.train",
         "--tokens", str(tokens), "--out", str(run), "--preset", "tiny", "--max-steps", "4", "--batch-size", "2",
         "--eval-interval", "4", "--eval-iters", "1", "--sample-tokens", "0", "--device", "cpu", "--no-export",
         "--eval-tasks", ",".join(tasks), "--eval-refs", ",".join(refs), "--eval-limit", "15", "--eval-ref-limit", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (rec,) = bench_records(run)
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert rec["tasks"]["arc_easy"]["n"] == 15 and rec["tasks"]["lambada_openai"]["n"] == 15
    assert_same_scores(rec, eval_final(run, tasks, refs, 15, tmp_path / "final.json"))


def test_eval_reads_an_hf_export_from_a_bucket(gpt2_run, small_suite, s3_server, tmp_path):
    from crawlproc.store.storage import Storage

    storage = Storage()
    bucket = s3_server.bucket(f"ev-{os.getpid()}") + "/model/hf"
    for f in (gpt2_run / "hf").iterdir():
        storage.upload(f, f"{bucket}/{f.name}")
    task = small_suite[0][0]
    remote_task = bucket.rsplit("/", 2)[0] + "/tasks/" + Path(task).name  # in the bucket, without a few-shot file
    storage.upload(task, remote_task)
    args = ["--refs", "none", "--limit", "8", "--items", "--device", "cpu"]
    assert crawlproc(["eval", bucket, "--tasks", remote_task, "--out", str(tmp_path / "s3.json"), *args]) == 0
    assert crawlproc(["eval", str(gpt2_run / "hf"), "--tasks", task, "--out", str(tmp_path / "local.json"), *args]) == 0
    remote, local = (json.loads((tmp_path / n).read_text()) for n in ("s3.json", "local.json"))
    assert remote["model"]["source"] == bucket and remote["tasks"][0]["items"] == local["tasks"][0]["items"]
