"""`crawlproc demo`: a mini Common Crawl on 127.0.0.1, through the whole pipeline to a short training run."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

SNAPSHOT = "CC-MAIN-2024-10"


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on a mini Common Crawl served locally (a few minutes on a laptop)",
        description="Build a Common Crawl-shaped tree (crawl-data/<snapshot>/warc.paths.gz and gzip-per-record "
        "WARCs) from the real pages in a source checkout's tests/data (or --data), serve it on 127.0.0.1, and run "
        "`crawlproc run` against it exactly as against the real Common Crawl: download, extract, filter, dedup, PII, tokenizer "
        "training, tokenization and a short CPU training run; then write the HTML report. Rerunning resumes.",
    )
    p.add_argument("--out", default="demo-out", help="output folder or bucket URI, e.g. s3://bucket/demo "
                   "(default: demo-out)")
    p.add_argument("--data", default=None, help="folder with the real pages the mini crawl is built from: html/ "
                   "and warc/ as in a source checkout's tests/data (the default; the wheel does not ship them)")
    p.add_argument("--files", type=int, default=6, help="WARC files in the mini crawl (default: 6)")
    p.add_argument("--train-steps", type=int, default=600, help="training steps (default: 600)")
    p.add_argument("--train-preset", default="tiny", help="model preset (default: tiny)")
    p.add_argument("--eval-items", type=int, default=100,
                   help="items of each bundled benchmark the model is scored on (default: 100; 0: all)")
    p.set_defaults(func=main)


def main(args) -> int:
    from pipelines.commands.common import guarded

    return guarded("demo", lambda: _main(args))


def _main(args) -> int:
    from pipelines.commands.common import preflight
    from pipelines.demo.minicc import DATA, MiniCCServer, build_minicc
    from pipelines.engine.ray_runtime import init_ray
    from pipelines.recipes import resolve_recipe
    from pipelines.inspect.report import write_report
    from pipelines.stages.run import print_summary, run_snapshot
    from pipelines.stages.chain import build_chain

    import tempfile

    from crawlproc.store.layout import Layout, TrainRunDir
    from crawlproc.store.storage import Storage, is_remote, join, normalize

    started = time.monotonic()
    out = normalize(args.out)  # a folder or a bucket (s3://...): the whole run state goes there
    recipe = resolve_recipe("demo")
    data = Path(args.data) if args.data else DATA
    if not (data / "html").is_dir() and not (data / "warc").is_dir():
        print(f"crawlproc demo: no pages in {data}: the mini Common Crawl is built from the real pages of a source "
              "checkout's tests/data (not shipped in the wheel). Run it from a clone of the repository, or pass "
              "--data DIR with html/ (ScrapingHub pages + ground-truth.json) and/or warc/ (WARC files).",
              file=sys.stderr)
        return 2
    preflight(Storage(), writes=[("--out", out)])
    print(f"demo: building a mini Common Crawl ({args.files} WARC files) from the real pages in {data} ...")
    # the crawl it serves is local (it stands for Common Crawl's own servers); with --out in a bucket it is
    # built in a temporary folder, so that nothing of the run is left on this machine
    crawl_dir = tempfile.mkdtemp(prefix="crawlproc-minicc-") if is_remote(out) else Layout(out).minicc_dir
    mini = build_minicc(crawl_dir, snapshot=SNAPSHOT, files=args.files, data_dir=data)
    # benchmarks (a small subset of the bundled suite) and bits per byte at every eval: the demo ends with its
    # model's evaluation, and the report draws each benchmark over the steps
    chain = build_chain(["extract", "dedup", "tokenize", "train"], train_preset=args.train_preset,
                        train_steps=args.train_steps, batch_size=16, lr=3e-3, log_interval=50,
                        eval_bench_interval=max(1, args.train_steps // 2), eval_limit=args.eval_items,
                        eval_ref_limit=2)
    init_ray(None, recipe)
    with MiniCCServer(mini.root) as server:
        print(f"demo: serving it at {server.base_url} ; running:\n"
              f"  crawlproc run --snapshot {SNAPSHOT} --base-url {server.base_url} --out {out} "
              f"--recipe demo --stages extract,dedup,tokenize,train")
        summary = run_snapshot(SNAPSHOT, out, recipe, base_url=server.base_url, chain=chain)
    print_summary(summary)
    report_path, _ = write_report(out)
    elapsed = time.monotonic() - started

    if is_remote(out):
        shutil.rmtree(crawl_dir, ignore_errors=True)
    snap = join(out, SNAPSHOT)
    info = summary.stage_info
    dedup = info.get("dedup", {})
    tok = info.get("tokenize", {})
    train = info.get("train", {})
    samples = (_last_sample(Storage(), TrainRunDir(train["out"], Storage()).path(TrainRunDir.SAMPLES))
               if train.get("out") else None)
    print("\nWhat happened, and where it is:")
    kept, removed = ((summary.total_kept, summary.total_removed) if summary.total_kept is not None
                     else (summary.kept, summary.removed))  # a bucket's markers are not all read back
    print(f"  extract   {kept} documents kept, {removed} removed "
          f"-> {snap}/docs/, removed/ (with the reason), _done/ (each file's counts)")
    print(f"  dedup     {dedup.get('exact_duplicates', 0)} exact + {dedup.get('near_duplicates', 0)} near "
          f"duplicates removed, PII replaced -> {snap}/final/, {snap}/dedup/")
    decontam = info.get("decontaminate")
    if decontam:
        print(f"  decontam  {decontam.get('removed', 0)} documents holding benchmark items removed "
              f"-> {snap}/decontaminated/, decontaminated_removed/ (each names its item)")
    print(f"  tokenize  {tok.get('train_tokens') or 0:,} train / {tok.get('val_tokens') or 0:,} val tokens "
          f"-> {tok.get('tokens_dir')}/")
    val = train.get("val_loss")
    print(f"  train     {train.get('step')} steps, val loss {val:.3f} -> {train.get('out')}/ "
          f"(metrics.jsonl, loss.png, ckpt/, hf/)" if val is not None else "  train     no result")
    if samples:
        print(f"  sample    {samples!r}")
    ev = train.get("eval")
    if ev:
        from trainer.eval_run import result_lines

        print(f"  eval      the final model on the first {ev['limit'] or 'all'} items of each bundled benchmark "
              f"(chance: 0.25 for 4 choices, 0.5 for PIQA) and bits per byte on reference text:")
        for line in result_lines(ev):
            print(f"            {line}")
        print(f"            all items: crawlproc eval {train.get('out')}")
    print(f"  report    {report_path}")
    print(f"  status    crawlproc status --out {out}")
    print(f"  explain   crawlproc explain --out {out} <url or id>")
    print(f"demo finished in {elapsed:.0f}s")
    return 0 if summary.ok else 1


def _last_sample(storage, uri: str) -> str | None:
    if not storage.exists(uri):
        return None
    lines = [ln for ln in storage.read_bytes(uri).decode("utf-8").splitlines() if ln.strip()]
    if not lines:
        return None
    row = json.loads(lines[-1])
    return (row.get("prompt", "") + row.get("text", ""))[:300]

