"""The training loop, readable top to bottom; one process, torchrun DDP, or Ray Train workers alike.

    python -m trainer.train --tokens OUT/tokens/NAME --out OUT/train/RUN --preset tiny --max-steps 200
    torchrun --nproc_per_node 8 -m trainer.train --tokens ... --out ... --preset 124m --compile

The run folder (local, or a URI such as s3://bucket/runs/r1) gets config.json, metrics.jsonl, samples.jsonl,
loss.png, ckpt/ and hf/. `--tokens` may be a URI too: shards are streamed with read-ahead (trainer/data.py).
A preempted node's replacement runs the same command with --resume and continues from the checkpoint that
ckpt/latest.json in the bucket names: same batches, same RNG streams on every rank, same losses.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from crawlproc.store.layout import TrainRunDir
from crawlproc.store.storage import Storage, clean_stage_partials, default_storage
from trainer.checkpoint import (
    latest_checkpoint, load_checkpoint, rank_rng_states, rng_state, save_checkpoint, set_rng_state,
)
from trainer.config import H100_BF16_TFLOPS, TrainConfig, add_train_args, config_from_args, lr_at, peak_tflops_for
from trainer.data import ShardLoader
from trainer.model import GPT
from trainer.plot import loss_png
from trainer.presets import GPTConfig, preset_config
from trainer.sample import load_sampling_tokenizer, sample_texts
from trainer.sanity import DataCheck, resume_refusal, schedule_changes
from tokenizer.tokenset import TokenSet, open_token_set

log = logging.getLogger("trainer")

__all__ = ["H100_BF16_TFLOPS", "TrainConfig", "add_train_args", "config_from_args", "lr_at", "main", "run_training"]


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we created the process group (torchrun), so we destroy it

    @property
    def master(self) -> bool:
        return self.rank == 0


def setup_distributed(device_pref: str) -> tuple[Dist, torch.device]:
    """Join torchrun's (or Ray Train's already created) process group if there is one; pick the device."""
    d = Dist(local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    want_cuda = device_pref.startswith("cuda") or (device_pref == "auto" and torch.cuda.is_available())
    if dist.is_available() and dist.is_initialized():  # Ray Train sets the group up before our loop
        d.rank, d.world_size = dist.get_rank(), dist.get_world_size()
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
        d.rank, d.world_size, d.owns_group = dist.get_rank(), dist.get_world_size(), True
    if want_cuda:
        device = torch.device(device_pref if ":" in device_pref else f"cuda:{d.local_rank}")
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return d, device


class RunFiles:
    """The run folder's logs, metrics.jsonl and samples.jsonl (written by rank 0 only).

    On a local disk each record is appended as it comes (tail -f works). An object store has no append: the
    records are kept in memory and each file is rewritten whole at every checkpoint, at the end, and at most
    every `flush_s` seconds in between. Nothing is lost that a resume would not redo: records after the
    checkpoint a run resumes from are dropped and produced again."""

    NAMES = TrainRunDir.RECORDS

    def __init__(self, run: TrainRunDir, enabled: bool, flush_s: float = 60.0):
        self.run, self.storage, self.enabled, self.flush_s = run, run.storage, enabled, flush_s
        self.local = run.storage.local_path(run.uri)
        self.records: dict[str, list[dict]] = {n: [] for n in self.NAMES}
        self._flushed = time.monotonic()

    def _read(self, name: str) -> list[dict]:
        uri = self.run.path(name)
        if not self.storage.exists(uri):
            return []
        return [json.loads(ln) for ln in self.storage.read_bytes(uri).decode().splitlines() if ln.strip()]

    def append(self, name: str, record: dict) -> None:
        if not self.enabled:
            return
        self.records[name].append(record)
        if self.local is not None:
            with (self.local / name).open("a") as f:
                f.write(json.dumps(record) + "\n")
        elif time.monotonic() - self._flushed > self.flush_s:
            self.flush()

    def flush(self) -> None:
        if not self.enabled or self.local is not None:
            return
        for name, recs in self.records.items():
            if recs:
                self.storage.write_bytes(self.run.path(name), "".join(json.dumps(r) + "\n" for r in recs).encode())
        self._flushed = time.monotonic()

    def truncate_after(self, step: int) -> None:
        """On resume, drop records a crash left beyond the checkpoint: they will be produced again. Every
        record of steps up to `step` is kept (also in memory, for loss.png and object-store rewrites)."""
        if not self.enabled:
            return
        for name in self.NAMES:
            self.records[name] = [r for r in self._read(name) if r.get("step", 0) <= step]
            uri = self.run.path(name)
            if self.records[name] or self.storage.exists(uri):
                self.storage.write_bytes(uri, "".join(json.dumps(r) + "\n" for r in self.records[name]).encode())

    def write_plot(self) -> None:
        png = loss_png(self.records[TrainRunDir.METRICS]) if self.enabled else None
        if png is not None:
            self.storage.write_bytes(self.run.path(TrainRunDir.PLOT), png)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run; `step` is the last step done, `checkpoint` the step --resume continues from."""

    def __init__(self, step: int, max_steps: int, checkpoint: int | None):
        super().__init__(f"interrupted at step {step} of {max_steps}")
        self.step, self.max_steps, self.checkpoint = step, max_steps, checkpoint


class CtrlC:
    """A first Ctrl-C only asks the loop to stop after the step it is in (it then checkpoints that step, so
    --resume continues exactly there); a second one interrupts at once. Single-process runs in the main thread
    only: the ranks of a distributed run would not agree on where to stop."""

    def __init__(self, enabled: bool):
        import signal
        import threading

        self.stop, self._previous = False, None
        if enabled and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum, frame) -> None:
        import signal

        self.stop = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print("stopping after this step (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def restore(self) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def training_seed(seed: int, rank: int) -> int:
    """The seed of one rank's training RNG stream (dropout): distinct per rank, so the ranks of a
    data-parallel run draw independent masks, as one process over the whole batch would."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def gather_rng(d: Dist, device: torch.device) -> list[dict]:
    """Every rank's RNG state, in rank order (a collective: all ranks call it)."""
    mine = rng_state(device)
    if d.world_size == 1:
        return [mine]
    states: list = [None] * d.world_size
    dist.all_gather_object(states, mine)
    return states


def restore_rng(states: list[dict], d: Dist, device: torch.device) -> None:
    if len(states) != d.world_size:
        log.warning("checkpoint has RNG states of %d rank(s), this run has %d: dropout streams continue from "
                    "rank %d's state, so the run is not bit-identical to an uninterrupted one", len(states),
                    d.world_size, d.rank % len(states))
    set_rng_state(states[d.rank % len(states)], device)


def token_set_record(tokset: TokenSet) -> dict:
    """Which data a run trains on: the token set, its manifest's sha256, and the mix recipe when it is a mix."""
    rec = {"uri": tokset.uri, "manifest_sha256": tokset.digest, "name": tokset.manifest.get("name"),
           "totals": tokset.manifest.get("totals")}
    mix = tokset.mix
    if mix:
        rec["mix"] = {"digest": mix.get("digest"), "seed": mix.get("seed"), "budget_tokens": mix.get("budget_tokens"),
                      "sources": [{"uri": s.get("uri"), "spec": s.get("spec"), "manifest_sha256": s.get("manifest_sha256"),
                                   "realized_tokens": (s.get("realized") or {}).get("train", {}).get("tokens")}
                                  for s in mix.get("sources", [])]}
    return rec


def _all_mean(values: list[float], d: Dist, device: torch.device) -> list[float]:
    if d.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / d.world_size).tolist()


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: ShardLoader, iters: int, autocast) -> float:
    """Mean loss over the first `iters` val batches (the same batches at every evaluation)."""
    model.eval()
    loader.reset()
    total = 0.0
    for _ in range(iters):
        x, y = loader.next_batch()
        with autocast:
            _, loss = model(x, y)
        total += loss.item()
    model.train()
    return total / iters


def run_training(cfg: TrainConfig, report: Callable[[dict], None] | None = None,
                 storage: Storage | None = None) -> dict:
    """Train as `cfg` says; returns {"step", "train_losses" (this invocation's), "val_loss", "out"}.
    `report(metrics)` is called on every rank at each log step (Ray Train passes ray.train.report).
    `storage`: how URIs are reached (a recipe's [storage]); default: the environment's."""
    d, device = setup_distributed(cfg.device)
    try:
        return _train(cfg, d, device, report, storage or default_storage())
    finally:
        if d.owns_group:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, d: Dist, device: torch.device, report, storage: Storage) -> dict:
    run = TrainRunDir(cfg.out, storage)
    out, ckpt_dir = run.uri, run.ckpt_dir
    files = RunFiles(run, d.master)
    if d.master:
        storage.makedirs(out)
        clean_stage_partials(storage, out)  # checkpoints and logs half-written by a killed run
    tokset = open_token_set(cfg.tokens, storage)
    vocab, eot_id = tokset.vocab_size, tokset.eot_id
    mcfg = preset_config(cfg.preset, vocab, cfg.block_size, cfg.dropout, cfg.arch)
    T = mcfg.block_size

    # --- resume or start ---------------------------------------------------------------------------------
    ckpt_path = latest_checkpoint(ckpt_dir, storage)
    if ckpt_path and not cfg.resume:
        raise FileExistsError(f"{out} already holds checkpoints: pass --resume to continue it or pick a new --out")
    ckpt = load_checkpoint(ckpt_path, storage) if (ckpt_path and cfg.resume) else None
    if ckpt:
        saved = GPTConfig(**ckpt["config"]["model"])
        if saved != mcfg:
            raise ValueError(f"checkpoint model {saved} differs from the requested {mcfg}")
        changes = schedule_changes(ckpt["config"]["train"], dataclasses.asdict(cfg))
        if changes and not cfg.reschedule:
            raise ValueError(resume_refusal(changes, ckpt["config"]["train"], ckpt["step"]))
        if changes:
            log.warning("resuming with a new schedule from step %d: %s", ckpt["step"], "; ".join(changes))
        trained_on = (ckpt["config"].get("tokens") or {}).get("manifest_sha256")
        if trained_on and trained_on != tokset.digest:
            log.warning("resuming on another token set than the checkpoint's (manifest sha256 %s, was %s): the "
                        "batches are not those of an uninterrupted run", tokset.digest, trained_on)

    torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    use_bf16 = cfg.dtype == "bfloat16" or (cfg.dtype == "auto" and device.type == "cuda"
                                            and torch.cuda.is_bf16_supported())
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if use_bf16
                else contextlib.nullcontext())

    raw = GPT(mcfg).to(device)
    torch.manual_seed(training_seed(cfg.seed, d.rank))  # this rank's own dropout stream
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(raw.optimizer_groups(cfg.weight_decay), lr=cfg.lr,
                                  betas=(cfg.beta1, cfg.beta2), fused=fused)
    train_loader = ShardLoader(tokset, "train", cfg.batch_size, T, d.rank, d.world_size, cfg.seed,
                               shuffle=True, device=device)
    val_loader = None
    if tokset.has_split("val"):
        val_loader = ShardLoader(tokset, "val", cfg.batch_size, T, d.rank, d.world_size, cfg.seed,
                                 shuffle=False, device=device, prefetch=1)
    else:
        log.warning("no val shards in %s: validation loss skipped", cfg.tokens)

    step = 0
    if ckpt:
        raw.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        train_loader.load_state_dict(ckpt["loader"])
        restore_rng(rank_rng_states(ckpt["rng"]), d, device)
        step = ckpt["step"]
        files.truncate_after(step)
        log.info("resumed from %s at step %d", ckpt_path, step)
    else:
        files.truncate_after(0)  # a fresh run does not inherit an earlier, checkpoint-less run's logs
    del ckpt

    if cfg.compile and d.master:  # torch.compile works on the first step: say so, or it looks stuck
        print("compiling the model (torch.compile): the first step waits for it (a minute or more on a CPU)",
              flush=True)
    model = torch.compile(raw) if cfg.compile else raw
    if d.world_size > 1:
        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    data = token_set_record(tokset)
    run_config = {"train": dataclasses.asdict(cfg), "model": dataclasses.asdict(mcfg), "world_size": d.world_size,
                  "params": raw.num_params(), "device": str(device), "bf16": use_bf16,
                  "tokens": {**data, "mix": tokset.mix}}
    if d.master:
        storage.write_json(run.config_uri, run_config)
    files.append(TrainRunDir.METRICS, {"step": step, "event": "resume" if step else "start", "tokens": data})
    tok = load_sampling_tokenizer(tokset) if d.master and cfg.sample_tokens > 0 else None
    evaluator = make_evaluator(cfg, tokset, raw, device, autocast, storage)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = cfg.peak_tflops or (peak_tflops_for(device_name) if device.type == "cuda" else None)
    if device.type == "cuda" and peak is None and d.master:
        log.warning("no published bf16 peak known for %s: MFU not reported (pass --peak-tflops)", device_name)
    tokens_per_step = cfg.batch_size * T * cfg.grad_accum * d.world_size
    flops_per_token = raw.flops_per_token(T)
    ckpt_every = cfg.ckpt_interval or cfg.eval_interval
    if d.master:
        print(f"model {raw.num_params() / 1e6:.2f}M params, {d.world_size} process(es) on {device} "
              f"({device_name}), {tokens_per_step} tokens/step, bf16={use_bf16}, compile={cfg.compile}, "
              f"data {tokset.uri} (manifest sha256 {tokset.digest[:12]})", flush=True)
        check = DataCheck((tokset.manifest.get("totals") or {}).get("train", {}).get("tokens", 0),
                          raw.num_params(), tokens_per_step * cfg.max_steps)
        print(check.line(), flush=True)
        if check.warning():
            log.warning(check.warning())

    train_losses: list[float] = []
    val_loss = None
    last_eval = None
    model.train()
    # tokens/s: wall time from the first step after a log to the next log (whose .item() waits for the GPU);
    # evaluation, samples and checkpoints that follow a log are left out
    t_mark, steps_since = time.perf_counter(), 0
    t_loop, first_step = time.perf_counter(), step
    ctrl_c = CtrlC(d.world_size == 1)
    try:
        while step < cfg.max_steps:
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum = torch.zeros((), device=device)
            for micro in range(cfg.grad_accum):
                x, y = train_loader.next_batch()
                # DDP: all-reduce gradients only on the last micro-batch of the step
                sync = micro == cfg.grad_accum - 1 or d.world_size == 1
                with (contextlib.nullcontext() if sync else model.no_sync()), autocast:
                    _, loss = model(x, y)
                (loss / cfg.grad_accum).backward()
                loss_sum += loss.detach()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            steps_since += 1
            if cfg.compile and step == first_step + 1 and d.master:
                print(f"compiled: the first step took {time.perf_counter() - t_loop:.1f}s", flush=True)

            logged = step % cfg.log_interval == 0 or step == cfg.max_steps
            if logged:
                (train_loss,) = _all_mean([loss_sum.item() / cfg.grad_accum], d, device)
                tps = tokens_per_step * steps_since / (time.perf_counter() - t_mark)
                mfu = flops_per_token * tps / (peak * 1e12 * d.world_size) if peak else None
                rec = {"step": step, "train_loss": train_loss, "lr": lr, "tokens_per_s": tps, "mfu": mfu}
                train_losses.append(train_loss)
                files.append(TrainRunDir.METRICS, rec)
                if d.master:
                    mfu_s = f"{100 * mfu:.1f}%" if mfu is not None else "-"
                    spent = time.perf_counter() - t_loop
                    left = spent / (step - first_step) * (cfg.max_steps - step)
                    print(f"step {step}/{cfg.max_steps} loss {train_loss:.4f} lr {lr:.2e} "
                          f"{tps:,.0f} tok/s mfu {mfu_s} | {_clock(spent)} elapsed, ~{_clock(left)} left", flush=True)
                if report:
                    report(rec)

            last = step == cfg.max_steps
            if val_loader is not None and (step % cfg.eval_interval == 0 or last):
                (val_loss,) = _all_mean([evaluate(model, val_loader, cfg.eval_iters, autocast)], d, device)
                files.append(TrainRunDir.METRICS, {"step": step, "val_loss": val_loss})
                if d.master:
                    print(f"step {step} val_loss {val_loss:.4f}", flush=True)
                if report:
                    report({"step": step, "val_loss": val_loss})
            if evaluator is not None and (step % (cfg.eval_bench_interval or cfg.eval_interval) == 0 or last):
                last_eval = run_benchmarks(evaluator, raw, d)
                files.append(TrainRunDir.METRICS, {"step": step, "event": "bench", **compact_eval(last_eval)})
                if d.master:
                    print(f"step {step} {eval_line(last_eval)}", flush=True)
            if tok is not None and (step % cfg.eval_interval == 0 or last):
                try:
                    texts = sample_texts(raw, tok, cfg.prompts, eot_id, vocab, cfg.sample_tokens, cfg.seed + step,
                                         device)
                except (ValueError, KeyError, IndexError, UnicodeError, RuntimeError) as e:
                    log.warning("sampling failed (%s): no more samples in this run", e)  # training goes on
                    tok, texts = None, []
                for prompt, text in zip(cfg.prompts, texts):
                    files.append(TrainRunDir.SAMPLES, {"step": step, "prompt": prompt, "text": text})
            if step % ckpt_every == 0 or last:
                rng = gather_rng(d, device)  # every rank's own streams (a collective)
                if d.master:
                    save_checkpoint(ckpt_dir, step, raw, optimizer, train_loader.state_dict(), run_config,
                                    cfg.keep_checkpoints, rng=rng, storage=storage)
                    files.flush()
                    files.write_plot()
                if d.world_size > 1:
                    dist.barrier()  # no rank runs ahead of a checkpoint that might be resumed from
            if logged:
                t_mark, steps_since = time.perf_counter(), 0
            if ctrl_c.stop and step < cfg.max_steps:  # Ctrl-C: keep this step, so --resume continues here
                if step % ckpt_every:
                    save_checkpoint(ckpt_dir, step, raw, optimizer, train_loader.state_dict(), run_config,
                                    cfg.keep_checkpoints, rng=gather_rng(d, device), storage=storage)
                    files.flush()
                    files.write_plot()
                raise TrainingInterrupted(step, cfg.max_steps, step)
    except TrainingInterrupted:
        raise
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside the steps: --resume takes the last checkpoint
        saved = latest_checkpoint(ckpt_dir, storage) if d.master else None
        raise TrainingInterrupted(step, cfg.max_steps,
                                  int(saved.rsplit("step-", 1)[1][:-3]) if saved else None) from None
    finally:
        ctrl_c.restore()
        train_loader.close()
        if val_loader is not None:
            val_loader.close()

    files.flush()
    if d.master and cfg.export:
        try:
            from trainer.export import export_hf

            export_hf(raw, run.hf_dir, tokset, eot_id, storage)
        except ImportError as e:
            log.warning("hf/ export skipped: %s", e)
    if d.master and last_eval is not None:
        storage.write_json(run.eval_uri, {"step": step, **last_eval})
    return {"step": step, "train_losses": train_losses, "val_loss": val_loss, "out": out, "eval": last_eval}


# --- benchmarks in the loop (trainer/evaluate.py) ------------------------------------------------------


def make_evaluator(cfg: TrainConfig, tokset: TokenSet, raw: torch.nn.Module, device: torch.device, autocast,
                   storage: Storage):
    """The Evaluator for cfg.eval_tasks / eval_refs over the run's tokenizer, or None when there is nothing to
    score. Bad task files are an error here, before the first step."""
    from crawlproc.evalsuite import resolve_paths
    from trainer.evaluate import EvalSpec, Evaluator, lm_from_model, storage_reader

    tasks, refs = resolve_paths(cfg.eval_tasks, "task"), resolve_paths(cfg.eval_refs, "reference")
    if not tasks and not refs:
        return None
    tok = load_sampling_tokenizer(tokset)
    if tok is None:
        log.warning("no benchmarks: the token set's tokenizer cannot be loaded")
        return None
    spec = EvalSpec(tasks, refs, cfg.eval_limit or None, cfg.eval_ref_limit or None, cfg.eval_fewshot,
                    cfg.eval_batch_size)
    lm = lm_from_model(raw, tok.encode, tokset.eot_id, device, autocast if device.type == "cuda" else None)
    return Evaluator(spec, lm, read=storage_reader(storage))


def run_benchmarks(evaluator, raw: torch.nn.Module, d: Dist) -> dict:
    """Every rank scores its slice; every rank gets the whole result (a collective under DDP)."""
    from trainer.evaluate import Gather

    was_training = raw.training
    raw.eval()
    try:
        return evaluator.run(Gather(d.rank, d.world_size))
    finally:
        raw.train(was_training)


def compact_eval(result: dict) -> dict:
    """The metrics.jsonl shape: {"tasks": {name: {acc, acc_norm | perplexity, n}}, "bpb": {name: bpb}}."""
    keep = ("acc", "acc_norm", "perplexity", "n")
    return {"tasks": {t["task"]: {k: t[k] for k in keep if t.get(k) is not None} for t in result["tasks"]},
            "bpb": {r["reference"]: r["bits_per_byte"] for r in result["references"]}}


def eval_line(result: dict) -> str:
    parts = [f"{t['task']} {t.get('acc_norm', t['acc']):.3f}" for t in result["tasks"]]
    parts += [f"{r['reference']} {r['bits_per_byte']:.3f} bpb" for r in result["references"]]
    return "eval " + ", ".join(parts)


def _clock(seconds: float) -> str:
    s = int(round(max(seconds, 0)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.train", description=__doc__.split("\n")[0])
    add_train_args(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        run_training(config_from_args(args))
    except (ValueError, FileExistsError, FileNotFoundError) as e:  # ShardError, CheckpointError: one line
        print(f"python -m trainer.train: error: {e}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:
        print(f"python -m trainer.train: {e}; add --resume to continue", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
