"""The extract stage against datatrove's FineWeb stage 1, like for like: both extract every page, same input,
same run.

    python bench/bench_extract.py                         # real-cc, real-other and generated, 3 rounds each
    python bench/bench_extract.py --inputs real-cc,generated --rounds 5
    python bench/bench_extract.py --warc a.warc.gz b.warc.gz   # any WARC files, as one input
    python bench/bench_extract.py --stock                 # also ours with extract.accelerate = false
    python bench/bench_extract.py --precheck-sweep        # the pre-check's gain vs the share of non-English pages
    python bench/bench_extract.py --profile               # also a cProfile of ours on each input

Inputs (each named in the report):
- **real-cc**: the genuine Common Crawl WARC excerpts in tests/data/warc (CC-MAIN-2020-34, -2024-22, -2022-05 and
  the 2019 commoncrawl.org capture): 19 HTML pages, mostly Chinese, real CC headers.
- **real-other**: the other real WARC captures there (dolma's two wget crawls, an archive.org wget crawl,
  warcio's example): 48 HTML pages, English.
- **generated**: bench/make_warc.py --mix cc, 1,000 captures (896 HTML documents) of real pages mutated, in
  Common Crawl's language mix (46% English).
Each input is one WARC file (the real ones are the excerpts' gzip members concatenated, each excerpt whole),
repeated within that file until it holds `--min-docs` documents (default 600): the real excerpts are small,
and a production WARC holds ~30,000 documents, so per-file costs (ours: a fingerprint and three output files
per WARC) would otherwise count as per-document ones. Both sides start the file with an empty trafilatura
duplicate cache (ours per file; for the peer a marker document at each file's start clears trafilatura's
global cache in its extractor process) and carry it through the copies alike, so later copies lose the same
repeated paragraphs and duplicate documents on both sides.

What runs on each side:
- **ours**: `crawlproc.extract.file.process_warc`, one process, with the default recipe (pipelines/recipes/
  fineweb.toml, FineWeb's stage 1: every page extracted, no pre-check; trafilatura through the accelerated
  call of crawlproc/extract/accelerate.py, which gives its exact text): our WARC reader -> URL filter (UT1
  lists + FineWeb's word lists) -> trafilatura (favour precision, tables, duplicate cache) -> lid.176 (en >
  0.65) -> Gopher repetition -> Gopher quality -> C4 -> FineWeb quality, writing docs/ and removed/ Parquet
  (removed documents keep their text).
- **ours-stock** (`--stock`): the same with `extract.accelerate = false`: trafilatura.extract as it ships.
- **datatrove 0.10.1**, as its examples/fineweb.py: WarcReader -> URLFilter -> Trafilatura(favour_precision,
  timeout 1 s) -> LanguageFilter(en > 0.65) -> GopherRepetition -> GopherQuality -> C4(filter_no_terminal_punct
  = False) -> FineWebQuality -> JsonlWriter, each filter with its exclusion writer, under
  LocalPipelineExecutor(tasks=1, workers=1). Its per-document timeout counts the extractor process's CPU time
  (read from /proc) instead of wall time, so machine load cannot make it drop pages; the timeouts of both sides
  are counted and printed. Its language model is the local lid.176.ftz; its tldextract uses the bundled suffix
  list: nothing is downloaded.

How it is measured: each side runs in a fresh interpreter per round; the interpreter runs the 5-capture setup
WARC twice (the first run pays imports and model loads, the second what every run pays again: datatrove
deep-copies its pipeline and reloads its lists per run), then the input. Throughput = documents per
CPU-second (user + system, the peer's extractor child included) of the input run minus the second setup run,
(docs_main - docs_setup) / (cpu_main - cpu_setup). Rounds interleave the sides, order alternating. RATIO =
ours / datatrove (> 1: ours is faster), the median over rounds, each round's ratio printed with the load
average. AGREEMENT, on the input's first copy (its documents once, with a fresh duplicate cache): Jaccard index
of the kept WARC-Record-IDs; TEXT: on the documents both sides extracted, how many texts are identical, and
the mean and smallest per-document token Jaccard. JSON: bench/out/extract.json.

`--precheck-sweep` writes generated WARCs whose English share is 1.0, 0.75, 0.46 (CC's), 0.25 and 0 (the
other languages in CC's proportions) and runs ours with fineweb.toml and with fineweb-fast.toml (the
pre-check) on each: the gain fast / default per CPU-second and the Jaccard of their kept sets, as a function
of the share of pages in languages the recipe does not keep.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import OUT, ROOT, cpu_seconds, lid_model_path, measured, ratio, run_isolated, write_json

DUMP = "CC-MAIN-BENCH"
STAGES = ["url_filter", "extract", "language", "gopher_repetition", "gopher_quality", "c4", "fineweb_quality"]
FILTER_STAGES = [s for s in STAGES if s != "extract"]  # the peer writes these out with a reason
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
WARCS = ROOT / "tests" / "data" / "warc"
REAL_INPUTS = {
    "real-cc": ["fastwarc_CC-MAIN-2020-34_excerpt.warc.gz", "whirlwind_CC-MAIN-2024-22.warc.gz", "jwarc_cc.warc.gz",
                "cmoncrawl_CC-MAIN-2022-05_mini.warc.gz"],
    "real-other": ["dolma_sample-0000.warc.gz", "dolma_sample-0001.warc.gz", "ia-web-commons_IAH-urls-wget.warc.gz",
                   "warcio_example.warc.gz"],
}
RESET_MARKER = "<!-- crawlproc bench: new file, clear the duplicate cache -->"
SWEEP_SHARES = [1.0, 0.75, 0.46, 0.25, 0.0]


# --------------------------------------------------------------- workers (each in a fresh interpreter)


def ours_recipe(variant: str):
    from pipelines.recipes import resolve_recipe

    if variant == "stock":
        return resolve_recipe("fineweb", {"extract": {"accelerate": False}})
    return resolve_recipe(variant)  # "fineweb" or "fineweb-fast"


def first_copy(rows: list[tuple[int, str, list, str]]) -> tuple[list, dict, dict]:
    """(kept ids, {id: [stage, reason]}, {id: text}) of each document's first occurrence; rows are
    (position in the input, id, [stage, reason] or ["kept", None], text)."""
    kept, removed, texts, done = [], {}, {}, set()
    for _pos, doc_id, verdict, text in sorted(rows, key=lambda r: r[0]):
        if doc_id in done:
            continue  # a later copy of the same record
        done.add(doc_id)
        if verdict[0] == "kept":
            kept.append(doc_id)
        else:
            removed[doc_id] = verdict
        if text:
            texts[doc_id] = text
    return kept, removed, texts


def run_ours(files: list[Path], work: Path, variant: str, timing: dict) -> dict:
    import pyarrow.parquet as pq

    from crawlproc.extract.file import process_warc
    from crawlproc.store.layout import Layout

    recipe = ours_recipe(variant)
    stats = []
    with measured(timing):
        for i, f in enumerate(files):
            stats.append(process_warc(f, work, recipe, dump=DUMP, stem=f"{i:04d}-{f.name.split('.')[0]}"))
    snap = Layout(str(work)).snapshot(DUMP)
    rows = []
    for i, st in enumerate(stats):
        for row in pq.read_table(snap.path("docs", st["stem"]), columns=["id", "text", "warc_offset"]).to_pylist():
            rows.append(((i, row["warc_offset"]), row["id"], ["kept", None], row["text"]))
        for row in pq.read_table(snap.path("removed", st["stem"]),
                                 columns=["id", "removed_by", "removed_reason", "text", "warc_offset"]).to_pylist():
            rows.append(((i, row["warc_offset"]), row["id"], [row["removed_by"], row["removed_reason"]], row["text"]))
    kept, removed, texts = first_copy(rows)
    return {
        "docs_in": sum(st["steps"]["url_filter"]["in"] or st["steps"]["extract"]["in"] for st in stats),
        "kept": kept, "removed": removed, "texts": texts,
        "timeouts": sum(v for st in stats for k, v in st["removed_reasons"].items() if k.endswith(":timeout")),
        "seconds": dict(sum((Counter(st["seconds"]) for st in stats), Counter())),
    }


def _accept_our_fasttext_binding() -> None:
    """datatrove asks for the distribution `fasttext-numpy2-wheel`; we ship `fasttext-numpy2`, which installs
    the same `fasttext` module (two bindings would overwrite each other's folder): accept that name too."""
    import importlib.metadata

    from datatrove.utils import _import_utils

    original = _import_utils._is_distribution_available

    def available(name: str) -> bool:
        if name == "fasttext-numpy2-wheel":
            try:
                importlib.metadata.version("fasttext-numpy2")
                return True
            except importlib.metadata.PackageNotFoundError:
                pass
        return original(name)

    _import_utils._is_distribution_available = available


def _child_cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process, from /proc/<pid>/stat (clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def use_cpu_time_for_the_peers_timeout() -> None:
    """datatrove's extractor sandbox times each document out after `timeout` seconds of wall time: on a loaded
    machine it drops pages (less work) at random. This makes it count the extractor process's CPU time instead,
    as ours does; a document is given at most 60x the limit in wall time."""
    from datatrove.pipeline.extractors import base

    def process_document(self, text, extract_fn):
        self._ensure_process(extract_fn)
        try:
            self.parent_conn.send(text)
            start = _child_cpu_seconds(self.process.pid)
            wall_deadline = time.monotonic() + 60 * self.timeout
            while True:
                if self.parent_conn.poll(0.02):
                    result = self.parent_conn.recv()
                    if isinstance(result, Exception):
                        raise result
                    return result
                if not self.process.is_alive():
                    raise EOFError("Child process died (probably OOM-killed)")
                if _child_cpu_seconds(self.process.pid) - start >= self.timeout or time.monotonic() > wall_deadline:
                    raise TimeoutError("Document extraction timed out")
        except (TimeoutError, EOFError):
            self._cleanup_process()
            raise

    base.ExtractorSandbox.process_document = process_document


def build_peer_pipeline(folder: Path, work: Path, seen: list, timeout_s: float = 1.0) -> list:
    _accept_our_fasttext_binding()
    use_cpu_time_for_the_peers_timeout()
    from datatrove.data import Document
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
        URLFilter,
    )
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter
    from datatrove.utils.lid import FT176LID
    from tldextract import TLDExtract

    class LocalFT176(FT176LID):
        """lid.176 from the local .ftz instead of a download of lid.176.bin."""

        @property
        def model(self):
            if self._model is None:
                from fasttext.FastText import _FastText

                self._model = _FastText(str(lid_model_path()))
            return self._model

    class PerFileTrafilatura(Trafilatura):
        """datatrove's Trafilatura step; a marker document clears trafilatura's duplicate cache in the extractor
        process (where the extraction runs) at each new file, as ours starts each file with an empty one."""

        def extract(self, text: str) -> str:
            if text == RESET_MARKER:
                from trafilatura.deduplication import LRU_TEST

                LRU_TEST.clear()
                return ""
            return super().extract(text)

    def tap(data, rank: int = 0, world_size: int = 1):  # records the peer's input; marks each new file
        current = None
        for doc in data:
            doc.metadata["bench_pos"] = len(seen)
            seen.append(doc.id)
            source = doc.metadata.get("file_path")
            if source != current:
                current = source
                yield Document(text=RESET_MARKER, id=f"reset-{len(seen)}", metadata={"url": "http://reset.invalid/"})
            yield doc

    def removed(stage: str):
        return JsonlWriter(str(work / "removed" / stage))

    url_filter = URLFilter(exclusion_writer=removed("url_filter"))
    url_filter.tldextractor = TLDExtract(suffix_list_urls=())  # the bundled snapshot: no fetch
    language = LanguageFilter(languages=["en"], language_threshold=0.65, exclusion_writer=removed("language"))
    language.model = LocalFT176(["en"])
    return [
        WarcReader(str(folder), glob_pattern="*.warc.gz", default_metadata={"dump": DUMP}),
        tap,
        url_filter,
        PerFileTrafilatura(favour_precision=True, timeout=timeout_s),
        language,
        GopherRepetitionFilter(exclusion_writer=removed("gopher_repetition")),
        GopherQualityFilter(exclusion_writer=removed("gopher_quality")),
        C4QualityFilter(filter_no_terminal_punct=False, exclusion_writer=removed("c4")),
        FineWebQualityFilter(exclusion_writer=removed("fineweb_quality")),
        JsonlWriter(str(work / "output")),
    ]


def _read_jsonl_dir(folder: Path):
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


def step_seconds(stats_file: Path) -> dict:
    """datatrove's own per-step time; a step that saw no document has no time statistics (a bare 0 there:
    the cause of the old TypeError)."""
    out = {}
    for step in json.loads(stats_file.read_text()):
        label = step["name"].split(":")[-1].strip().split(" ", 1)[-1]
        ts = step.get("time_stats")
        out[label] = round(ts["total"], 3) if isinstance(ts, dict) and "total" in ts else 0.0
    return out


def run_peer(files: list[Path], work: Path, variant: str, timing: dict) -> dict:
    from datatrove.executor import LocalPipelineExecutor

    folder = work / "input"  # the reader takes a folder: the input's files, linked
    folder.mkdir(parents=True)
    for i, f in enumerate(files):
        (folder / f"{i:04d}-{f.name}").symlink_to(f)
    seen: list[str] = []
    executor = LocalPipelineExecutor(
        build_peer_pipeline(folder, work, seen), tasks=1, workers=1, logging_dir=str(work / "logs")
    )
    with measured(timing):
        executor.run()
    written = {}  # input position -> ([stage, reason] or ["kept", None], the text as written out)
    for d in _read_jsonl_dir(work / "output"):
        written[d["metadata"]["bench_pos"]] = (["kept", None], d["text"])
    for stage in FILTER_STAGES:
        for d in _read_jsonl_dir(work / "removed" / stage):
            meta = d.get("metadata") or {}
            written[meta["bench_pos"]] = ([stage, meta.get("filter_reason")], d.get("text") or "")
    # written nowhere: the extractor gave nothing or timed out
    rows = [(pos, doc_id, *written.get(pos, (["extract", "empty_or_timeout"], ""))) for pos, doc_id in enumerate(seen)]
    kept, removed, texts = first_copy(rows)
    stats = json.loads((work / "logs" / "stats" / "00000.json").read_text())
    timeouts = sum((s.get("stats") or {}).get("timeout", 0) for s in stats if "Trafilatura" in s["name"])
    return {"docs_in": len(seen), "kept": kept, "removed": removed, "texts": texts, "timeouts": timeouts,
            "seconds": step_seconds(work / "logs" / "stats" / "00000.json")}


def worker(side: str, files: list[Path], setup: Path, work: Path, result: Path, profile: bool) -> None:
    """setup (cold), setup again, then the input; writes the timings and the input run's outputs."""
    fn, variant = (run_peer, "") if side == "datatrove" else (run_ours, {
        "ours": "fineweb", "ours-stock": "stock", "ours-fast": "fineweb-fast"}[side])
    runs = {}
    for name, inputs in (("cold", [setup]), ("setup", [setup]), ("main", files)):
        timing: dict = {}
        if profile and name == "main":
            import cProfile

            prof = cProfile.Profile(time.process_time)
            prof.enable()
        out = fn(inputs, work / name, variant, timing)
        if profile and name == "main":
            prof.disable()
            prof.dump_stats(str(OUT / f"extract-{side}.prof"))
        runs[name] = {"timing": timing, **({k: v for k, v in out.items()} if name == "main" else
                                           {"docs_in": out["docs_in"]})}
    write_json(result, runs)


# --------------------------------------------------------------- the comparison (parent process)


def side_run(side: str, files: list[Path], setup: Path, work: Path, logs: Path, tag: str,
             profile: bool = False) -> dict:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    args = [__file__, "--worker", side, "--setup", str(setup), "--work", str(work)]
    args += ["--profile"] if profile else []
    return run_isolated([*args, "--files", *map(str, files), "--result", str(work / "result.json")],
                        logs / f"{side}-{tag}.log", env=OFFLINE_ENV)


def throughput(run: dict) -> dict:
    main, setup = run["main"], run["setup"]
    docs = main["docs_in"] - setup["docs_in"]
    cpu = max(main["timing"]["cpu_s"] - setup["timing"]["cpu_s"], 1e-6)
    return {
        "docs": main["docs_in"],
        "kept": len(main["kept"]),
        "timeouts": main["timeouts"],
        "docs_per_cpu_s": round(docs / cpu, 2),
        "ms_per_doc_cpu": round(1000 * cpu / max(docs, 1), 2),
        "cpu_s": round(main["timing"]["cpu_s"], 2),
        "wall_s": round(main["timing"]["wall_s"], 2),
        "setup_cpu_s": round(run["cold"]["timing"]["cpu_s"], 2),
        "rerun_setup_cpu_s": round(setup["timing"]["cpu_s"], 2),
    }


def jaccard(a: set, b: set) -> float:
    return round(len(a & b) / len(a | b), 4) if a | b else 1.0


def token_jaccard(a: str, b: str) -> float:
    sa, sb = set(a.split()), set(b.split())
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def stage_of(res: dict, doc_id: str) -> list:
    if doc_id in res["removed"]:
        return res["removed"][doc_id]
    return ["kept", None] if doc_id in res["kept_set"] else ["not_read", None]


def compare(ours: dict, peer: dict, show: int) -> dict:
    for r in (ours, peer):
        r["kept_set"] = set(r["kept"])
    a, b = ours["kept_set"], peer["kept_set"]
    table = {stage: {"ours": sum(1 for v in ours["removed"].values() if v[0] == stage),
                     "peer": sum(1 for v in peer["removed"].values() if v[0] == stage)} for stage in STAGES}
    table["kept"] = {"ours": len(a), "peer": len(b)}
    disagree = [{"id": i, "ours": stage_of(ours, i), "peer": stage_of(peer, i)} for i in sorted(a ^ b)]
    both = sorted(set(ours["texts"]) & set(peer["texts"]))
    jac = [token_jaccard(ours["texts"][i], peer["texts"][i]) for i in both]
    read = (a | set(ours["removed"])) & (b | set(peer["removed"]))  # documents both readers produced
    return {
        "jaccard": jaccard(a, b), "kept_both": len(a & b), "only_ours": len(a - b), "only_peer": len(b - a),
        "jaccard_both_read": jaccard(a & read, b & read), "read_by_one_only": len((a | b) - read),
        "stages": table,
        "disagreement_kinds": dict(Counter(f"{d['ours'][0]} vs {d['peer'][0]}" for d in disagree).most_common()),
        "disagreements": disagree[:show],
        "text": {
            "extracted_by_both": len(both),
            "identical": sum(ours["texts"][i] == peer["texts"][i] for i in both),
            "mean_token_jaccard": round(statistics.mean(jac), 5) if jac else None,
            "min_token_jaccard": round(min(jac), 5) if jac else None,
            "below_0.99": sum(j < 0.99 for j in jac),
        },
    }


def prepare_inputs(args) -> dict[str, list[Path]]:
    from make_warc import generate

    inputs: dict[str, list[Path]] = {}
    if args.warc:
        inputs["given"] = [p.resolve() for p in args.warc]
        return inputs
    for name in args.inputs.split(","):
        if name in REAL_INPUTS:
            inputs[name] = [WARCS / f for f in REAL_INPUTS[name]]
        elif name == "generated":
            path = OUT / f"cc-bench-cc-{args.records}-s{args.seed}.warc.gz"
            if not path.is_file():
                print(f"generating {path} ({args.records} captures, seed {args.seed}, Common Crawl's mix)")
                generate(path, args.records, args.seed, mix="cc")
            inputs[name] = [path]
        else:
            raise SystemExit(f"unknown input {name!r} (real-cc, real-other, generated)")
    return inputs


def count_html_docs(files: list[Path]) -> int:
    from crawlproc.warc.reader import ReadCounts, iter_html_records

    return sum(1 for f in files for _ in iter_html_records(f, ReadCounts()))


def one_file(name: str, files: list[Path], copies: int) -> Path:
    """The files' bytes one after the other, `copies` times, in one WARC (each .warc.gz is a series of gzip
    members, one per record, so the concatenation is a WARC of all their records)."""
    if len(files) == 1 and copies == 1:
        return files[0]
    out = OUT / f"input-{name}-x{copies}.warc.gz"
    data = b"".join(f.read_bytes() for f in files)
    if not out.is_file() or out.stat().st_size != len(data) * copies:
        tmp = out.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for _ in range(copies):
                f.write(data)
        tmp.replace(out)
    return out


def bench_input(name: str, files: list[Path], sides: list[str], setup: Path, args) -> dict:
    n = count_html_docs(files)
    copies = max(1, math.ceil(args.min_docs / max(n, 1)))
    files_run = [one_file(name, files, copies)]
    print(f"\n== {name}: {len(files)} file(s), {n} HTML documents, as one WARC of {copies} "
          f"cop{'y' if copies == 1 else 'ies'} ({n * copies} documents)", flush=True)
    work, logs = OUT / "extract-work" / name, OUT / "logs"
    rounds, results = [], {}
    for k in range(max(1, args.rounds)):
        order = sides if k % 2 == 0 else sides[::-1]
        row = {"load_before": round(os.getloadavg()[0], 2)}
        for side in order:
            res = side_run(side, files_run, setup, work / side, logs, name,
                           profile=args.profile and k == 0 and side == "ours")
            results.setdefault(side, res["main"])  # the first round's outputs give the agreement
            row[side] = throughput(res)
            print(f"  round {k + 1} {side}: {json.dumps(row[side])}", flush=True)
        row["load_after"] = round(os.getloadavg()[0], 2)
        rounds.append(row)
    summary = {"files": [str(f) for f in files], "html_documents": n, "copies": copies, "rounds": rounds}
    summary["throughput"] = {s: {k: round(statistics.median([r[s][k] for r in rounds]), 2) for k in rounds[0][s]}
                             for s in sides}
    for s in sides:
        if s == "datatrove":
            continue
        per_round = [ratio(r[s]["docs_per_cpu_s"], r["datatrove"]["docs_per_cpu_s"]) for r in rounds]
        summary[f"ratio_{s}"] = {"median": round(statistics.median(per_round), 3), "rounds": per_round}
        summary[f"agreement_{s}"] = compare(results[s], results["datatrove"], args.show)
    summary["seconds"] = {s: results[s]["seconds"] for s in sides}
    print_input(name, summary, sides)
    return summary


def print_input(name: str, s: dict, sides: list[str]) -> None:
    t = s["throughput"]
    print(f"\n{name}: {s['html_documents']} HTML documents x {s['copies']}; {len(s['rounds'])} round(s), medians")
    print(f"{'':26}" + "".join(f"{x:>16}" for x in sides))
    for key, label in [("docs_per_cpu_s", "docs per CPU-second"), ("ms_per_doc_cpu", "CPU ms per document"),
                       ("kept", "kept"), ("timeouts", "extraction timeouts"),
                       ("setup_cpu_s", "setup CPU s (cold)")]:
        print(f"{label:26}" + "".join(f"{t[x][key]:>16}" for x in sides))
    loads = [(r["load_before"], r["load_after"]) for r in s["rounds"]]
    for x in sides:
        if x == "datatrove":
            continue
        r, a = s[f"ratio_{x}"], s[f"agreement_{x}"]
        print(f"RATIO {x} / datatrove, docs per CPU-second: {r['median']} (rounds {r['rounds']}; load {loads})")
        print(f"AGREEMENT kept sets {x} vs datatrove: Jaccard {a['jaccard']} (both {a['kept_both']}, only {x} "
              f"{a['only_ours']}, only datatrove {a['only_peer']}); {a['jaccard_both_read']} on the documents both "
              f"readers produced ({a['read_by_one_only']} kept documents only one reader produced)")
        tx = a["text"]
        print(f"TEXT {x} vs datatrove on the {tx['extracted_by_both']} documents both extracted: {tx['identical']} "
              f"identical; token Jaccard mean {tx['mean_token_jaccard']}, min {tx['min_token_jaccard']}, "
              f"{tx['below_0.99']} below 0.99")
        if a["disagreement_kinds"]:
            print(f"  kept-set disagreements: {a['disagreement_kinds']}")
            for d in a["disagreements"]:
                print(f"    {d['id']}  {x}={d['ours'][0]}({d['ours'][1]})  datatrove={d['peer'][0]}({d['peer'][1]})")


def precheck_sweep(setup: Path, args) -> dict:
    """ours with fineweb.toml vs fineweb-fast.toml on generated WARCs with different English shares."""
    from make_warc import generate

    rows = {}
    print("\n== the pre-check's gain (fineweb-fast / fineweb, docs per CPU-second) vs the share of pages in "
          "languages the recipe does not keep", flush=True)
    for share in SWEEP_SHARES:
        path = OUT / f"cc-bench-en{int(round(share * 100)):03d}-{args.sweep_records}-s{args.seed}.warc.gz"
        if not path.is_file():
            generate(path, args.sweep_records, args.seed, mix="cc", english_share=share)
        per_round, jac, runs = [], None, {}
        for k in range(max(1, args.rounds)):
            for side in (("ours", "ours-fast") if k % 2 == 0 else ("ours-fast", "ours")):
                runs[side] = side_run(side, [path], setup, OUT / "extract-work" / "sweep" / side, OUT / "logs",
                                      f"sweep-{share}")
            per_round.append(ratio(throughput(runs["ours-fast"])["docs_per_cpu_s"],
                                   throughput(runs["ours"])["docs_per_cpu_s"]))
            if jac is None:
                jac = jaccard(set(runs["ours"]["main"]["kept"]), set(runs["ours-fast"]["main"]["kept"]))
        removed_by_precheck = sum(1 for v in runs["ours-fast"]["main"]["removed"].values()
                                  if v[0] == "language" and (v[1] or "").startswith("precheck:"))
        docs = runs["ours"]["main"]["docs_in"]
        not_kept = sum(1 for v in runs["ours"]["main"]["removed"].values() if v[0] == "language")
        rows[str(share)] = {"english_share_of_articles": share, "docs": docs,
                       "removed_by_language_without_precheck": not_kept,
                       "share_removed_by_language": round(not_kept / max(docs, 1), 3),
                       "removed_by_precheck": removed_by_precheck, "gain_median": statistics.median(per_round),
                       "gain_rounds": per_round, "kept_jaccard": jac}
        print(f"  English {share:.2f} of the articles: {not_kept}/{docs} documents removed by the language filter "
              f"({not_kept / max(docs, 1):.0%}); the pre-check removes {removed_by_precheck} unextracted; gain "
              f"{rows[str(share)]['gain_median']} (rounds {per_round}); kept-set Jaccard {jac}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", default="real-cc,real-other,generated",
                    help="comma-separated: real-cc, real-other, generated")
    ap.add_argument("--warc", type=Path, nargs="+", help="run these WARC files as one input instead")
    ap.add_argument("--records", type=int, default=1000, help="captures in the generated WARC")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per input (the ratio is their median)")
    ap.add_argument("--min-docs", type=int, default=600, help="a smaller input is run as copies up to this many")
    ap.add_argument("--stock", action="store_true", help="also ours with extract.accelerate = false")
    ap.add_argument("--precheck-sweep", action="store_true", help="only the pre-check's gain vs the language mix")
    ap.add_argument("--sweep-records", type=int, default=600, help="captures per WARC of the sweep")
    ap.add_argument("--show", type=int, default=10, help="disagreeing ids to print")
    ap.add_argument("--profile", action="store_true", help="cProfile ours in the first round (bench/out/*.prof)")
    ap.add_argument("--worker", choices=["ours", "ours-stock", "ours-fast", "datatrove"], help=argparse.SUPPRESS)
    ap.add_argument("--files", type=Path, nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--setup", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:  # one side, in this fresh interpreter
        worker(args.worker, [f.resolve() for f in args.files], args.setup.resolve(), args.work.resolve(),
               args.result, args.profile)
        return 0

    from make_warc import generate

    setup = OUT / "cc-bench-base.warc.gz"  # 5 captures: each side's per-run fixed cost
    if not setup.is_file():
        generate(setup, 5, 1)
    summary: dict = {"dump": DUMP, "cpu_s_at_start": round(cpu_seconds(), 2),
                     "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    if args.precheck_sweep:
        summary["precheck_sweep"] = precheck_sweep(setup, args)
    else:
        sides = ["ours", "datatrove"] + (["ours-stock"] if args.stock else [])
        summary["sides"] = sides
        summary["inputs"] = {name: bench_input(name, files, sides, setup, args)
                             for name, files in prepare_inputs(args).items()}
        print("\nSUMMARY (like for like: both sides extract every page)")
        for name, s in summary["inputs"].items():
            a = s["agreement_ours"]
            print(f"  {name:12} {s['html_documents']:>5} documents: ours / datatrove {s['ratio_ours']['median']} "
                  f"per CPU-second; kept-set Jaccard {a['jaccard']} ({a['jaccard_both_read']} on documents both "
                  f"read); texts identical {a['text']['identical']}/{a['text']['extracted_by_both']} (min token "
                  f"Jaccard {a['text']['min_token_jaccard']})")
    summary["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    name = "extract-precheck-sweep.json" if args.precheck_sweep else "extract.json"
    write_json(OUT / name, summary)
    print(f"\nsummary: {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
