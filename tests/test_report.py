"""`crawlproc report`: the numbers collected from a realistic output folder, the HTML page, and the page in
headless Chromium (no console errors, nothing fetched, every chart drawn, a screenshot saved)."""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawlproc.schema import REMOVED_SCHEMA, docs_table
from crawlproc.store.layout import Markers
from crawlproc.store.storage import Storage, atomic_write_json, atomic_write_table
from pipelines.cli import main
from pipelines.inspect.report import collect_report, render_html, write_report
from pipelines.inspect.report.collect import length_histogram

try:
    from browser import Chromium, ensure_chromium
except ImportError:  # collected as a package (tests/__init__.py present)
    from tests.browser import Chromium, ensure_chromium

STAGES = ["url_filter", "extract", "language", "gopher_repetition", "gopher_quality", "c4", "fineweb_quality"]
SNAP1, SNAP2 = "CC-MAIN-2024-10", "CC-MAIN-2024-18"


def doc_id(name: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}>"


def articles(data_dir: Path) -> list[dict]:
    return json.loads((data_dir / "report" / "articles.json").read_text(encoding="utf-8"))


def make_row(dump: str, stem: str, n: int, url: str, text: str, language="en", score=0.93, removed_by=None,
             reason=None) -> dict:
    row = {"text": text, "id": doc_id(f"{dump}/{stem}/{n}"), "dump": dump, "url": url,
           "date": "2024-02-21T10:00:00Z", "file_path": f"crawl-data/{dump}/segments/1/warc/{stem}.warc.gz",
           "language": language, "language_score": score, "token_count": len(text.split()),
           "warc_offset": 1000 * n}
    if removed_by:
        row |= {"removed_by": removed_by, "removed_reason": reason}
    return row


def write_warc_outputs(out: Path, dump: str, stem: str, kept: list[dict], removed: list[dict],
                       skipped: dict | None = None) -> dict:
    """docs/, removed/ and _done/ (with the file's stats) for one WARC, counted the way the extract stage counts."""
    snap = out / dump
    atomic_write_table(snap / "docs" / f"{stem}.parquet", docs_table(kept))
    atomic_write_table(snap / "removed" / f"{stem}.parquet", docs_table(removed, REMOVED_SCHEMA))
    skipped = skipped or {"not_response": 0, "revisit": 0, "non_html": 0, "too_large": 0, "undecodable": 0,
                          "malformed": 0}
    stage_in, stage_removed, reasons, langs = Counter(), Counter(), Counter(), Counter()
    for row in kept + removed:
        last = STAGES.index(row["removed_by"]) if row.get("removed_by") else len(STAGES) - 1
        for s in STAGES[: last + 1]:
            stage_in[s] += 1
        if STAGES.index("language") <= last and row.get("removed_by") not in ("url_filter", "extract"):
            langs[row["language"]] += 1
        if row.get("removed_by"):
            stage_removed[row["removed_by"]] += 1
            r = row["removed_reason"].split(":")[0] if row["removed_by"] == "language" else row["removed_reason"]
            reasons[f"{row['removed_by']}:{r}"] += 1
    responses = len(kept) + len(removed) + sum(skipped.values()) - skipped["not_response"]
    stats = {
        "file": kept[0]["file_path"] if kept else stem, "stem": stem, "dump": dump,
        "records": 2 * responses + 1, "responses": responses, "skipped": skipped,
        "steps": {s: {"in": stage_in[s], "removed": stage_removed[s]} for s in STAGES},
        "removed_reasons": dict(reasons), "languages": dict(langs), "kept": len(kept), "removed": len(removed),
        "seconds": {"total": 3.5, "read": 0.2, "extract": 2.1, "language": 0.1, "gopher_repetition": 0.4,
                    "gopher_quality": 0.2, "c4": 0.3, "fineweb_quality": 0.2},
        "error": None, "complete": True,
    }
    Markers(Storage(), str(snap / "_done"), str(snap / "_failed")).mark_done(  # as the stage runner writes it
        stem, "0123456789abcdef", {"stage": "extract", "source": stats["file"], "stats": stats})
    return stats


def repeated(text: str) -> str:
    """A page whose body repeats three times (a common template fault): Gopher repetition removes it."""
    paras = [p for p in text.split("\n") if p.strip()][:4]
    return "\n\n".join(paras * 3)


def build_output(out: Path, data_dir: Path) -> dict:
    """A two-snapshot output folder: SNAP1 went through dedup, PII, tokenization and training; SNAP2 only
    through the extract stage (one file failed)."""
    arts = articles(data_dir)
    en = [a for a in arts if not re.search(r"\.(kr|br)/", a["url"])]
    foreign = [a for a in arts if re.search(r"\.(kr|br)/", a["url"])]
    lang_of = {"kr": ("ko", 0.99), "br": ("pt", 0.97)}
    expect = {}

    # SNAP1, file 0: five English articles kept, one near-copy of the first kept, one of each removal.
    s1 = "CC-MAIN-20240221-00000"
    kept0 = [make_row(SNAP1, s1, i, a["url"], a["text"]) for i, a in enumerate(en[:5])]
    kept0.append(make_row(SNAP1, s1, 5, en[0]["url"] + "?amp=1", en[0]["text"].replace("\n", "\n\n", 1)))
    removed0 = [
        make_row(SNAP1, s1, 10, "http://casino-bonus.example.xxx/free", "", language=None, score=None,
                 removed_by="url_filter", reason="domain"),
        make_row(SNAP1, s1, 11, en[5]["url"] + "#dup", repeated(en[5]["text"]), removed_by="gopher_repetition",
                 reason="dup_para_frac"),
        make_row(SNAP1, s1, 12, "https://example.org/stub", "Subscribe now to read more.", removed_by="gopher_quality",
                 reason="gopher_short_doc"),
    ]
    for i, a in enumerate(foreign):
        lang, score = lang_of[re.search(r"\.(kr|br)/", a["url"]).group(1)]
        removed0.append(make_row(SNAP1, s1, 20 + i, a["url"], a["text"], language=lang, score=score,
                                 removed_by="language", reason=f"{lang}:{score:.2f}"))
    write_warc_outputs(out, SNAP1, s1, kept0, removed0)

    # SNAP1, file 1: the remaining English articles kept, one short page removed by C4.
    s2 = "CC-MAIN-20240221-00001"
    kept1 = [make_row(SNAP1, s2, i, a["url"], a["text"]) for i, a in enumerate(en[5:])]
    removed1 = [make_row(SNAP1, s2, 9, "https://example.com/privacy", "We use cookies. Accept?",
                         removed_by="c4", reason="too_few_sentences")]
    write_warc_outputs(out, SNAP1, s2, kept1, removed1,
                       skipped={"not_response": 0, "revisit": 1, "non_html": 3, "too_large": 0,
                                "undecodable": 0, "malformed": 0})

    # Dedup: the near-copy is dropped in a cluster of 2; final/ holds the survivors.
    dup = kept0[5]
    atomic_write_table(out / SNAP1 / "dedup" / "duplicates" / f"{s1}.parquet", pa.table({
        "id": [dup["id"]], "cluster_id": pa.array([5], pa.int64()), "kept_id": [kept0[0]["id"]], "kind": ["near"]}))
    n_docs = len(kept0) + len(kept1)
    atomic_write_json(out / SNAP1 / "dedup" / "summary.json", {
        "snapshot": SNAP1, "documents": n_docs, "kept": n_docs - 1, "exact_duplicates": 0, "near_duplicates": 1,
        "matched_earlier": 0, "clusters": 1, "cluster_sizes": {"2": 1}, "pii": {"emails": 2, "ips": 1},
        "seconds": 1.2})
    atomic_write_json(out / SNAP1 / "dedup" / "_done.json", {"finished_at": "2024-03-01"})
    atomic_write_table(out / SNAP1 / "final" / f"{s1}.parquet", docs_table(kept0[:5]))
    atomic_write_table(out / SNAP1 / "final" / f"{s2}.parquet", docs_table(kept1))
    final_ids = [r["id"] for r in kept0[:5] + kept1]

    # Tokens: two train shards and one val shard with real token lists.
    tok = out / "tokens" / "bpe-4k"
    shards = []
    for split, idx, ids in (("train", 0, final_ids[:4]), ("train", 1, final_ids[4:7]), ("val", 0, final_ids[7:])):
        lists = [[(7 * k + j) % 4000 for j in range(50 + 30 * k)] for k in range(len(ids))]
        name = f"{split}-{idx:05d}.parquet"
        atomic_write_table(tok / name, pa.table({"id": pa.array(ids, pa.string()),
                                                 "tokens": pa.array(lists, pa.list_(pa.uint16()))}))
        shards.append({"split": split, "file": name, "tokens": sum(map(len, lists)), "documents": len(ids),
                       "sources": [SNAP1]})
    totals = {s: {"tokens": sum(x["tokens"] for x in shards if x["split"] == s),
                  "documents": sum(x["documents"] for x in shards if x["split"] == s)} for s in ("train", "val")}
    atomic_write_json(tok / "manifest.json", {
        "name": "bpe-4k", "tokenizer": {"file": "tokenizer.json", "tiktoken_file": "tokenizer.tiktoken",
                                        "sha256": "0" * 64, "vocab_size": 4096, "eot_token": "<|endoftext|>",
                                        "eot_id": 4095},
        "dtype": "uint16", "shards": shards, "totals": totals, "skipped": {"empty": 0, "too_long": 1},
        "inputs": [f"{SNAP1}/final/{s1}.parquet", f"{SNAP1}/final/{s2}.parquet"]})

    # Training: a loss curve with eval steps, one torn last line (a run killed mid-write), samples.
    run = out / "train" / "tiny-cpu"
    run.mkdir(parents=True)
    lines = []
    for step in range(60):
        lines.append(json.dumps({"step": step, "train_loss": 8.3 * 0.97 ** step + 2.0, "lr": 6e-4,
                                 "tokens_per_s": 5000.0 + step, "mfu": 0.01}))
        if step % 20 == 0 or step == 59:
            lines.append(json.dumps({"step": step, "val_loss": 8.4 * 0.97 ** step + 2.1}))
    (run / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 60, "train_lo', encoding="utf-8")
    (run / "samples.jsonl").write_text("\n".join(json.dumps(
        {"step": s, "prompt": "The ", "text": f"The <b>city</b> council said at step {s}"}) for s in (20, 59)) + "\n")
    (run / "config.json").write_text(json.dumps({"preset": "tiny", "n_layer": 2, "lr": 6e-4}))

    # SNAP2: one file done (extract only), one failed download.
    s3 = "CC-MAIN-20240415-00000"
    kept2 = [make_row(SNAP2, s3, i, a["url"] + "?v=2", a["text"]) for i, a in enumerate(en[:2])]
    removed2 = [make_row(SNAP2, s3, 5, "https://example.net/x", "", language=None, score=None,
                         removed_by="extract", reason="empty")]
    write_warc_outputs(out, SNAP2, s3, kept2, removed2)
    Markers(Storage(), str(out / SNAP2 / "_done"), str(out / SNAP2 / "_failed")).mark_failed(
        "CC-MAIN-20240415-00001", {"stage": "extract", "source": "crawl-data/x/CC-MAIN-20240415-00001.warc.gz",
                                   "error": "DownloadError: HTTP 503 (after 6 attempts)",
                                   "failure": {"type": "DownloadError", "message": "HTTP 503 (after 6 attempts)",
                                               "frames": [], "wrapped_by": [], "kind": "error"}})

    expect.update(kept_snap1=len(kept0) + len(kept1), final_snap1=len(final_ids), dup=dup, kept0=kept0,
                  removed0=removed0, totals=totals, shards=shards, n_en=len(en), kept2=len(kept2),
                  chars=sorted(len(r["text"]) for r in kept0 + kept1))
    return expect


@pytest.fixture(scope="module")
def run_output(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("report") / "out"
    expect = build_output(out, data_dir)
    return out, expect


def _snap(data: dict, name: str) -> dict:
    return next(s for s in data["snapshots"] if s["name"] == name)


def test_collect_funnel_and_counts(run_output):
    out, expect = run_output
    data = collect_report(out)
    assert [s["name"] for s in data["snapshots"]] == [SNAP1, SNAP2]
    s1 = _snap(data, SNAP1)
    funnel = {f["step"]: f for f in s1["funnel"]}
    n_removed = len(expect["removed0"]) + 1
    assert funnel["HTTP responses"]["docs"] == expect["kept_snap1"] + n_removed + 3 + 1  # + revisit, non_html
    assert funnel["into url_filter"]["docs"] == expect["kept_snap1"] + n_removed  # skipped records are not
    assert funnel["after url_filter"]["removed"] == 1
    assert funnel["after language"]["removed"] == 2
    assert funnel["after c4"]["removed"] == 1
    assert funnel["kept by filters"]["docs"] == expect["kept_snap1"]
    assert funnel["after fineweb_quality"]["docs"] == expect["kept_snap1"]
    assert funnel["after dedup"] == {"step": "after dedup", "docs": expect["kept_snap1"] - 1, "removed": 1,
                                     "stage": "dedup"}
    assert funnel["final (after PII)"]["docs"] == expect["final_snap1"]
    assert funnel["tokenized"]["tokens"] == expect["totals"]["train"]["tokens"] + expect["totals"]["val"]["tokens"]
    steps = [f["step"] for f in s1["funnel"]]
    assert steps.index("after url_filter") < steps.index("after language") < steps.index("after dedup")
    assert s1["skipped"]["non_html"] == 3

    reasons = {r["key"]: r for r in s1["removed_reasons"]}
    assert set(reasons) == {"url_filter:domain", "gopher_repetition:dup_para_frac", "gopher_quality:gopher_short_doc",
                            "language:ko", "language:pt", "c4:too_few_sentences"}
    assert reasons["language:ko"]["examples"][0]["url"].startswith("http://entermedia.co.kr/")
    assert reasons["url_filter:domain"]["examples"] == [
        {"url": "http://casino-bonus.example.xxx/free", "id": expect["removed0"][0]["id"], "reason": "domain",
         "snippet": ""}]  # removed by the URL filter: never extracted, no text
    # every other reason shows the start of its example's text, on one line (issue 31)
    short = reasons["gopher_quality:gopher_short_doc"]["examples"][0]
    assert short["snippet"] == "Subscribe now to read more."
    rep = reasons["gopher_repetition:dup_para_frac"]["examples"][0]
    assert rep["snippet"].endswith(" …") and " ".join(expect["removed0"][1]["text"].split()).startswith(
        rep["snippet"][:-2])
    assert s1["languages"]["en"] == expect["kept_snap1"] + 3  # the kept ones and three quality removals
    assert s1["languages"]["ko"] == 1 and "url_filter" not in s1["languages"]

    docs_len = s1["lengths"]["docs"]
    assert docs_len["documents"] == expect["kept_snap1"]
    assert sum(b["count"] for b in docs_len["bins"]) == expect["kept_snap1"]
    assert docs_len["max"] == expect["chars"][-1]
    assert s1["lengths"]["final"]["documents"] == expect["final_snap1"]
    assert s1["dedup"]["cluster_sizes"] == {"2": 1} and s1["dedup"]["complete"]

    s2 = _snap(data, SNAP2)
    assert s2["dedup"] is None and s2["final_documents"] is None and s2["tokens"] is None
    assert s2["files"]["done"] == 1 and s2["files"]["failed"][0]["type"] == "DownloadError"
    assert s2["lengths"]["docs"]["documents"] == expect["kept2"]

    (ts,) = data["tokens"]
    assert [s["tokens"] for s in ts["shards"]] == [s["tokens"] for s in expect["shards"]]
    (run,) = data["training"]
    assert len(run["train_loss"]) == 60 and len(run["val_loss"]) == 4
    assert run["steps"] == 59 and run["best_val_loss"] == pytest.approx(8.4 * 0.97 ** 59 + 2.1)
    assert [s["step"] for s in run["samples"]] == [20, 59]
    assert any("metrics.jsonl: skipped 1 malformed line" in p for p in data["problems"])


def test_html_is_self_contained_and_marks_missing_parts(run_output):
    out, _ = run_output
    html = render_html(collect_report(out))
    assert "<script src" not in html and "<link" not in html and "http-equiv" not in html
    assert not re.search(r"""(src|href)=["']https?://""", html)  # nothing to fetch; example URLs are text
    charts = re.findall(r'data-chart="([^"]+)"', html)
    for name in (f"funnel:{SNAP1}", f"reasons:{SNAP1}", f"languages:{SNAP1}", f"lengths-docs:{SNAP1}",
                 f"lengths-final:{SNAP1}", f"dedup-clusters:{SNAP1}", f"funnel:{SNAP2}", "tokens:bpe-4k",
                 "loss:tiny-cpu"):
        assert name in charts
    assert f'data-section="dedup:{SNAP2}" data-status="not-run"' in html
    assert f'data-section="dedup:{SNAP1}"' not in html
    assert "PII replaced in final/: 2 e-mail address(es), 1 IP address(es)" in html
    assert "&lt;b&gt;city&lt;/b&gt;" in html and "<b>city</b>" not in html  # sample text is escaped
    embedded = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html,
                         re.DOTALL).group(1)
    assert json.loads(embedded.replace("<\\/", "</"))["snapshots"][0]["name"] == SNAP1


def test_report_of_an_empty_output_shows_not_run(tmp_path):
    (tmp_path / "out").mkdir()
    path, data = write_report(tmp_path / "out")
    path = Path(path)
    html = path.read_text(encoding="utf-8")
    assert data["snapshots"] == [] and data["tokens"] == [] and data["training"] == []
    for section in ("overview", "tokens", "training"):
        assert f'data-section="{section}" data-status="not-run"' in html
    assert "data-chart=" not in html


def test_damaged_inputs_are_reported_not_fatal(tmp_path, data_dir):
    out = tmp_path / "out"
    build_output(out, data_dir)
    markers = Markers(Storage(), str(out / SNAP1 / "_done"), str(out / SNAP1 / "_failed"))
    (out / SNAP2 / "_done" / "broken.0123456789abcdef.json").write_text("{not json")
    (out / SNAP2 / "removed" / "torn.parquet").write_bytes(b"PAR1 truncated")
    (out / "tokens" / "half-done").mkdir()
    good = [markers.read(f"CC-MAIN-20240221-0000{i}", "0123456789abcdef")["stats"] for i in (0, 1)]
    markers.mark_done("wrong-types", "0123456789abcdef",
                      {"stage": "extract", "stats": good[1] | {"stem": "wrong-types", "records": "many"}})
    manifest = out / "tokens" / "bpe-4k" / "manifest.json"
    m = json.loads(manifest.read_text())
    m["shards"][0]["tokens"], m["totals"] = "lots", ["not", "a", "dict"]
    manifest.write_text(json.dumps(m))
    data = collect_report(out)
    problems = "\n".join(data["problems"])
    assert "wrong-types: malformed stats" in problems
    assert _snap(data, SNAP1)["totals"]["records"] == sum(g["records"] for g in good)  # the bad file is left out
    assert "shard train-00000.parquet: tokens must be a count, got 'lots'" in problems
    assert "unreadable done marker of broken" in problems
    assert "torn.parquet: unreadable Parquet" in problems
    assert "half-done/manifest.json not found: token set not finished" in problems
    s2 = _snap(data, SNAP2)
    assert s2["totals"]["kept"] == 2  # the readable stats still count
    assert 'id="problems"' in render_html(data)


def test_cli_writes_report_and_json(run_output, tmp_path, capsys):
    out, expect = run_output
    html_path, json_path = tmp_path / "r.html", tmp_path / "r.json"
    elsewhere = tmp_path / "runs" / "gpu-run"  # trained with `crawlproc train --out` outside <out>/train/
    elsewhere.mkdir(parents=True)
    (elsewhere / "metrics.jsonl").write_text('{"step": 0, "train_loss": 9.0}\n{"step": 1, "train_loss": 8.5}\n')
    assert main(["report", "--out", str(out), "--html", str(html_path), "--json", str(json_path),
                 "--train", str(elsewhere)]) == 0
    assert html_path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    data = json.loads(json_path.read_text())
    assert _snap(data, SNAP1)["totals"]["kept"] == expect["kept_snap1"]
    assert [r["run"] for r in data["training"]] == ["tiny-cpu", "gpu-run"]
    assert data["training"][1]["train_loss"] == [[0, 9.0], [1, 8.5]]
    assert "report written to" in capsys.readouterr().out
    assert main(["report", "--out", str(tmp_path / "missing")]) == 2


# --- in a real browser ---------------------------------------------------------------------------------------

CHART_CHECK = """
Array.from(document.querySelectorAll('[data-chart]')).map(function (svg) {
  var box = svg.getBoundingClientRect();
  var marks = Array.from(svg.querySelectorAll('.mark'));
  var drawn = marks.filter(function (m) { var b = m.getBoundingClientRect(); return b.width > 0 && b.height > 0; });
  return {name: svg.getAttribute('data-chart'), width: box.width, height: box.height,
          marks: marks.length, drawn: drawn.length};
})
"""


@pytest.fixture(scope="module")
def chromium():
    path, reason = ensure_chromium()
    if path is None:
        pytest.skip(f"headless Chromium unavailable: {reason}")
    with Chromium(path) as browser:
        yield browser


def test_report_renders_in_headless_chromium(run_output, chromium, tmp_path):
    out, _ = run_output
    html_path, data = write_report(out, tmp_path / "report.html")
    html_path = Path(html_path)
    shot = tmp_path / "report.png"
    page = chromium.load(html_path.as_uri(), evaluate=CHART_CHECK, screenshot=shot)
    assert page.errors == []
    assert page.requests == [html_path.as_uri()]  # self-contained: the page asked for nothing else
    charts = {c["name"]: c for c in page.value}
    assert len(charts) == len(page.value) >= 9  # chart names are unique
    assert {f"funnel:{SNAP1}", f"dedup-clusters:{SNAP1}", "tokens:bpe-4k", "loss:tiny-cpu"} <= set(charts)
    for c in charts.values():
        assert c["width"] > 0 and c["height"] > 0, c
        assert c["marks"] > 0 and c["drawn"] > 0, c
    assert charts["tokens:bpe-4k"]["marks"] == 3  # one bar per shard
    assert charts[f"funnel:{SNAP1}"]["marks"] == len(_snap(data, SNAP1)["funnel"])
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    keep = os.environ.get("CRAWLPROC_ARTIFACTS")  # CI can keep the page and its screenshot for a human look
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")
        shutil.copy(html_path, Path(keep) / "report.html")


def test_browser_helper_sees_errors_and_requests(chromium, tmp_path):
    """The checks above are only meaningful if the helper does catch a broken page."""
    page_path = tmp_path / "broken.html"
    page_path.write_text('<html><body><img src="missing.png"><script>console.error("boom");'
                         "undefinedFunction();</script></body></html>")
    page = chromium.load(page_path.as_uri())
    assert any("boom" in e for e in page.console_errors)
    assert any("missing.png" in e for e in page.console_errors)
    assert any("undefinedFunction" in e for e in page.exceptions)
    assert page_path.with_name("missing.png").as_uri() in page.requests


def test_length_histogram_samples_big_runs(run_output):
    out, expect = run_output
    files = sorted((out / SNAP1 / "docs").glob("*.parquet"))
    whole = length_histogram(Storage(), [str(f) for f in files], [])
    assert whole["files_read"] == whole["files_total"] == 2 and whole["documents"] == expect["kept_snap1"]
    sample = length_histogram(Storage(), [str(f) for f in files], [], max_files=1)
    assert (sample["files_read"], sample["files_total"]) == (1, 2)
    assert sample["documents"] == pq.read_metadata(files[0]).num_rows
    assert length_histogram(Storage(), [], []) is None
