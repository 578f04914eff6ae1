"""Index-selected input (fetch.mode = "index"): selection rules, range planning, ranged reads of real CC
WARCs served on 127.0.0.1 with faults and from moto S3, and `crawlproc run` end to end against a full read."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crawlproc.crawl.cclang import index_codes
from crawlproc.crawl.ccindex import REASONS, Range, SelectRule, classify_rows, plan_ranges, select_table
from crawlproc.crawl.download import DownloadError
from crawlproc.crawl.ranged import check_member, fetch_records
from crawlproc.recipe import DownloadConfig
from pipelines.demo.minicc import Fault, MiniCCServer, build_minicc, index_rows, write_index

CFG = DownloadConfig(retries=3, backoff_s=0.01, max_backoff_s=0.5, timeout_s=5.0)
REASON_LANGUAGE = REASONS.index("index:language")
CC_WARC = "fastwarc_CC-MAIN-2020-34_excerpt.warc.gz"  # real CC: 16 responses with CC's languages-cld2


def _table(rows):
    return pa.Table.from_pylist([{"url": "http://a/", "fetch_status": 200, "content_mime_type": "text/html",
                                  "content_mime_detected": "text/html", "content_languages": "eng",
                                  "warc_filename": "w.warc.gz", "warc_record_offset": 0,
                                  "warc_record_length": 10} | r for r in rows])


def test_rows_are_selected_by_status_type_language_and_url():
    t = _table([{}, {"fetch_status": 404}, {"content_mime_detected": "image/png"},
                {"content_mime_detected": None, "content_mime_type": "text/html; charset=utf-8"},
                {"content_languages": "deu,eng"}, {"content_languages": "deu,fra,eng"},
                {"content_languages": "deu,fra,ita,eng"}, {"content_languages": None}, {"content_languages": ""},
                {"url": "http://bad.example/x"}])
    rule = SelectRule(languages=frozenset({"eng"}))
    got = classify_rows(t, rule, lambda u: "bad.example" not in u).tolist()
    # selected, status, not_html, selected (HTTP type), eng second, eng third, eng fourth (CLD2 lists 3),
    # unknown language selected twice, url filter
    assert got == [0, 1, 2, 0, 0, 0, 3, 0, 0, 4]
    assert classify_rows(t, SelectRule(languages=frozenset({"eng"}), positions=1, unknown=False)).tolist() == \
        [0, 1, 2, 0, 3, 3, 3, 3, 3, 0]
    assert classify_rows(t, SelectRule(languages=None)).tolist() == [0, 1, 2, 0, 0, 0, 0, 0, 0, 0]


def test_counts_cover_every_row_and_selection_is_sorted():
    t = _table([{"warc_record_offset": 50, "warc_filename": "b"}, {"warc_record_offset": 10, "warc_filename": "b"},
                {"fetch_status": 301, "warc_filename": "a"}, {"warc_filename": "a", "warc_record_offset": 5}])
    sel, counts = select_table(t, SelectRule(languages=frozenset({"eng"})))
    assert list(zip(sel["warc_filename"].to_pylist(), sel["offset"].to_pylist())) == [("a", 5), ("b", 10), ("b", 50)]
    assert sum(counts["n"].to_pylist()) == t.num_rows


def test_language_codes_of_a_recipe():
    assert index_codes(["en"]) == {"eng"}
    assert index_codes(["als"]) == {"deu"}  # Alemannic: CLD2 has no such language, it says German
    assert index_codes(["sh"]) == {"hrv", "srp", "bos"}
    assert index_codes(["en"], ["sco"]) == {"eng", "sco"}
    assert index_codes([]) is None  # every language
    assert index_codes(["ce"]) is None  # Chechen: the index cannot tell it, so nothing is ruled out


def test_ranges_merge_close_records_and_respect_the_cap():
    recs = [(0, 100), (100, 50), (200, 10), (10_000, 5), (10_005, 5)]
    assert [(r.start, r.end, len(r.records)) for r in plan_ranges(recs, 0)] == [(0, 150, 2), (200, 210, 1),
                                                                                (10_000, 10_010, 2)]
    assert [(r.start, r.end) for r in plan_ranges(recs, 100)] == [(0, 210), (10_000, 10_010)]
    assert len(plan_ranges(recs, 1 << 20, max_range_bytes=150)) == 3
    assert plan_ranges(recs + recs, 0) == plan_ranges(recs, 0)  # a duplicate row is read once
    with pytest.raises(ValueError, match="overlap"):
        plan_ranges([(0, 100), (50, 100)])


def _members(data_dir):
    rows = index_rows(data_dir / "warc" / CC_WARC, CC_WARC)
    raw = (data_dir / "warc" / CC_WARC).read_bytes()
    return rows, raw


def test_a_record_is_checked_as_one_whole_gzip_member(data_dir):
    rows, raw = _members(data_dir)
    r = rows[0]
    good = raw[r["warc_record_offset"]: r["warc_record_offset"] + r["warc_record_length"]]
    assert check_member(good, 1 << 30) is None
    assert "truncated" in check_member(good[:-5], 1 << 30)
    assert "after the gzip member" in check_member(good + good[:10], 1 << 30)
    assert "corrupt" in check_member(good[:40] + bytes([good[40] ^ 0xFF]) + good[41:], 1 << 30)
    assert "inflates past" in check_member(good, 100)
    assert check_member(gzip.compress(b"not a record"), 1 << 30) == "not a WARC record"


@pytest.fixture
def served(data_dir, tmp_path):
    root = tmp_path / "srv"
    (root / "w").mkdir(parents=True)
    shutil.copy(data_dir / "warc" / CC_WARC, root / "w" / CC_WARC)
    with MiniCCServer(root) as srv:
        yield srv


def _some_ranges(rows, gap=0):
    picked = [(r["warc_record_offset"], r["warc_record_length"]) for r in rows[::2]]  # every other response
    return picked, plan_ranges(picked, gap)


def _expected(raw, picked):
    return b"".join(raw[o:o + n] for o, n in sorted(picked))


def test_ranged_fetch_gets_exactly_the_selected_records(served, data_dir, tmp_path):
    rows, raw = _members(data_dir)
    picked, ranges = _some_ranges(rows)
    got = fetch_records(f"{served.base_url}/w/{CC_WARC}", ranges, tmp_path / "o.warc.gz", CFG)
    assert (tmp_path / "o.warc.gz").read_bytes() == _expected(raw, picked)
    assert got.records == len(picked) and got.requests == len(ranges) == got.ranges
    assert sorted(got.offsets.values()) == sorted(o for o, _ in picked)
    assert all(r["range"] and r["range"].startswith("bytes=") for r in served.requests_for(f"w/{CC_WARC}"))
    # merging across the gaps: one request for the whole selection, the gaps dropped
    one = plan_ranges(picked, max_gap_bytes=len(raw))
    got = fetch_records(f"{served.base_url}/w/{CC_WARC}", one, tmp_path / "p.warc.gz", CFG)
    assert got.requests == 1 and (tmp_path / "p.warc.gz").read_bytes() == _expected(raw, picked)
    assert got.bytes > got.record_bytes


@pytest.mark.parametrize("fault", [Fault("status", status=503), Fault("reset", after_bytes=3000),
                                   Fault("truncate", after_bytes=2000), Fault("corrupt", after_bytes=1500),
                                   Fault("status", status=429, retry_after="0")])
def test_ranged_fetch_survives_faults(served, data_dir, tmp_path, fault):
    rows, raw = _members(data_dir)
    picked = [(r["warc_record_offset"], r["warc_record_length"]) for r in rows]
    one = plan_ranges(picked, max_gap_bytes=len(raw))
    served.add_fault(f"w/{CC_WARC}", fault)
    got = fetch_records(f"{served.base_url}/w/{CC_WARC}", one, tmp_path / "o.warc.gz", CFG)
    assert (tmp_path / "o.warc.gz").read_bytes() == _expected(raw, picked)
    assert got.requests >= 2 and not got.skipped
    if fault.kind in ("reset", "truncate"):  # the retry asks only for what is missing
        ranges = [r["range"] for r in served.requests_for(f"w/{CC_WARC}")]
        assert ranges[1] != ranges[0] and int(ranges[1].split("=")[1].split("-")[0]) > one[0].start


def test_ranged_fetch_refuses_a_server_that_ignores_range(served, data_dir, tmp_path):
    rows, _raw = _members(data_dir)
    _picked, ranges = _some_ranges(rows)
    served.add_fault(f"w/{CC_WARC}", Fault("ignore_range"))
    with pytest.raises(DownloadError, match="ignored the Range"):
        fetch_records(f"{served.base_url}/w/{CC_WARC}", ranges, tmp_path / "o.warc.gz", CFG)


def test_a_wrong_index_entry_is_a_counted_skip_not_a_failure(served, data_dir, tmp_path):
    rows, raw = _members(data_dir)
    good = [(r["warc_record_offset"], r["warc_record_length"]) for r in rows[:3]]
    bad = (good[-1][0] + good[-1][1] + 7, 300)  # not the start of a record
    got = fetch_records(f"{served.base_url}/w/{CC_WARC}", plan_ranges(good + [bad]), tmp_path / "o.warc.gz", CFG)
    assert got.records == 3 and got.skipped == {"index:bad_record": 1}
    assert (tmp_path / "o.warc.gz").read_bytes() == _expected(raw, good)


def test_a_missing_file_fails_at_once(served, tmp_path):
    with pytest.raises(DownloadError) as e:
        fetch_records(f"{served.base_url}/w/nope.warc.gz", [Range(0, 10, [(0, 10)])], tmp_path / "o", CFG)
    assert e.value.permanent and e.value.status == 404


def test_ranged_reads_from_an_object_store(s3_server, data_dir, tmp_path):
    from crawlproc.store.storage import Storage

    rows, raw = _members(data_dir)
    bucket = s3_server.bucket("ranged")
    storage = Storage()
    storage.write_bytes(f"{bucket}/w/{CC_WARC}", raw)
    picked, ranges = _some_ranges(rows)
    got = fetch_records(f"{bucket}/w/{CC_WARC}", ranges, tmp_path / "o.warc.gz", CFG, storage=storage)
    assert (tmp_path / "o.warc.gz").read_bytes() == _expected(raw, picked)
    assert got.requests == len(ranges)


def test_the_index_writer_points_at_whole_records(data_dir, tmp_path):
    """The fixture index (pipelines/demo/minicc.py write_index) is what CC's would be: every row's range is one
    response record, and CC's own languages are carried over."""
    rows, raw = _members(data_dir)
    assert len(rows) == 16 and all(check_member(raw[r["warc_record_offset"]:][: r["warc_record_length"]], 1 << 30)
                                   is None for r in rows)
    langs = sorted({r["content_languages"].split(",")[0] for r in rows})
    assert langs == ["deu", "eng", "nld", "rus", "zho"]
    mini = build_minicc(tmp_path / "cc", files=2, max_pages=4)
    t = pq.read_table(write_index(mini, tmp_path / "index.parquet"))
    assert set(t["warc_filename"].to_pylist()) == set(mini.paths)


# ---------------------------------------------------------------------------------------------- end to end

SNAP = "CC-MAIN-2024-10"
RUN = {"extract": {"engine": "resiliparse"}, "download": {"backoff_s": 0.05, "max_backoff_s": 0.5, "retries": 3},
       "dedup": {"enabled": False}, "tokenize": {"source": "docs"}}


def _docs(out, kind="docs"):
    got = {}
    for f in sorted((out / SNAP / kind).glob("*.parquet")):
        for r in pq.read_table(f, columns=["id", "file_path", "warc_offset", "text"]).to_pylist():
            assert r["id"] not in got, f"{r['id']} twice"
            got[r["id"]] = r
    return got


def _stats(out):
    from crawlproc.extract.stats import snapshot_stats
    from crawlproc.store.layout import Layout

    by_stem, problems = snapshot_stats(Layout(str(out)).snapshot(SNAP))
    assert not problems
    return [s.to_dict() for _, s in sorted(by_stem.items())]


@pytest.fixture(scope="module")
def cc(tmp_path_factory):
    root = tmp_path_factory.mktemp("cc")
    mini = build_minicc(root, snapshot=SNAP, files=3, max_pages=30)
    index = write_index(mini, root / "index" / "part-00000.parquet")
    with MiniCCServer(mini.root) as srv:
        yield mini, index, srv


def test_index_mode_fetches_only_selected_records_and_keeps_what_a_full_read_keeps(ray_local, cc, tmp_path):
    from crawlproc.recipe import load_recipe
    from pipelines.stages.run import run_snapshot

    mini, index, srv = cc
    full_out, idx_out = tmp_path / "full", tmp_path / "idx"
    run_snapshot(SNAP, full_out, load_recipe(None, RUN), base_url=srv.base_url, progress=False)
    srv.requests.clear()
    srv.add_fault(mini.paths[0], Fault("reset", after_bytes=5000))
    recipe = load_recipe(None, {**RUN, "fetch": {"mode": "index", "index": str(index)}})
    summary = run_snapshot(SNAP, idx_out, recipe, base_url=srv.base_url, progress=False)
    assert summary.ok and summary.done == 3, summary
    for p in mini.paths:  # nothing but ranged reads of the WARCs
        reqs = srv.requests_for(p)
        assert reqs and all(r["range"] for r in reqs)

    rows = pq.read_table(index).to_pylist()
    rule = SelectRule(languages=frozenset({"eng"}))
    reasons = classify_rows(pq.read_table(index), rule).tolist()
    selected = {(r["warc_filename"], r["warc_record_offset"]) for r, why in zip(rows, reasons) if why == 0}
    assert 0 < len(selected) < len(rows)
    full, got = _docs(full_out), _docs(idx_out)
    # every document the index run keeps is the full run's, byte for byte, at the same offset
    for i, d in got.items():
        assert full[i]["text"] == d["text"] and full[i]["warc_offset"] == d["warc_offset"]
    # what the full run keeps and the index run does not: only records the index ruled out
    lost = [d for i, d in full.items() if i not in got]
    assert all((d["file_path"], d["warc_offset"]) not in selected for d in lost)
    stats = _stats(idx_out)
    skipped = sum(s["skipped"].get("index:language", 0) for s in stats)
    assert skipped == sum(1 for why in reasons if why == 3) > 0
    assert sum(s["index"]["selected"] for s in stats) == len(selected)
    assert sum(s["index"]["rows"] for s in stats) == len(rows)

    # a rerun does nothing; a wider language margin redoes exactly the files whose selection changed
    again = run_snapshot(SNAP, idx_out, recipe, base_url=srv.base_url, progress=False)
    assert again.done == 0 and again.skipped_done == 3
    margin = ["zho", "rus", "deu", "nld"]
    wider = load_recipe(None, {**RUN, "fetch": {"mode": "index", "index": str(index), "language_margin": margin}})
    reasons2 = classify_rows(pq.read_table(index), SelectRule(languages=frozenset({"eng", *margin}))).tolist()
    changed = {r["warc_filename"] for r, a, b in zip(rows, reasons, reasons2) if a != b}
    assert 0 < len(changed) < 3
    third = run_snapshot(SNAP, idx_out, wider, base_url=srv.base_url, progress=False)
    assert third.done == len(changed) and third.skipped_done == 3 - len(changed)
    after = _docs(idx_out)  # no id twice (asserted inside)
    selected2 = {(r["warc_filename"], r["warc_record_offset"]) for r, why in zip(rows, reasons2) if why == 0}
    assert {i for i, d in full.items() if (d["file_path"], d["warc_offset"]) in selected2} == set(after)


def test_an_index_rewritten_in_place_is_selected_again(ray_local, cc, tmp_path):
    """A given `fetch.index` part is known by its content, not its path: the same file name with other rows
    (an index regenerated in place) selects again, and the files whose selection changed are redone."""
    from crawlproc.recipe import load_recipe
    from pipelines.stages.run import run_snapshot

    mini, index, srv = cc
    mine = tmp_path / "index" / "part-00000.parquet"
    mine.parent.mkdir()
    shutil.copy(index, mine)
    recipe = load_recipe(None, {**RUN, "fetch": {"mode": "index", "index": str(mine)}})
    out = tmp_path / "out"
    assert run_snapshot(SNAP, out, recipe, base_url=srv.base_url, progress=False).done == 3

    # the same path, new rows: the pages the recipe skipped for their language now say English
    table = pq.read_table(index)
    rule = SelectRule(languages=frozenset({"eng"}))
    reasons = classify_rows(table, rule)
    by_language = reasons == REASON_LANGUAGE
    assert 0 < by_language.sum() < table.num_rows
    langs = pa.array(["eng" if b else v for v, b in zip(table.column("content_languages").to_pylist(),
                                                         by_language)], pa.string())
    table = table.set_column(table.column_names.index("content_languages"), "content_languages", langs)
    pq.write_table(table, mine)
    changed = {f for f, b in zip(table.column("warc_filename").to_pylist(), by_language) if b}
    assert 0 < len(changed) <= 3

    again = run_snapshot(SNAP, out, recipe, base_url=srv.base_url, progress=False)
    assert again.ok and again.done == len(changed) and again.skipped_done == 3 - len(changed), again
    rows = table.to_pylist()
    now = classify_rows(table, rule).tolist()
    selected = {(r["warc_filename"], r["warc_record_offset"]) for r, why in zip(rows, now) if why == 0}
    stats = _stats(out)
    assert sum(s["index"]["selected"] for s in stats) == len(selected)
    assert sum(s["skipped"].get("index:language", 0) for s in stats) == 0
    got = _docs(out)  # no id twice (asserted inside)
    assert {(d["file_path"], d["warc_offset"]) for d in got.values()} <= selected


def test_a_folder_in_ccs_layout_gives_only_its_subset_warc_parts(tmp_path):
    """CC lays a snapshot's index out as crawl=<snapshot>/subset={warc,crawldiagnostics,robotstxt}/: the other
    subsets index other WARC files (redirects and errors, robots.txt), which the snapshot's listing never reads."""
    from crawlproc.recipe import load_recipe
    from crawlproc.store.storage import Storage
    from pipelines.stages.index import IndexSelectionError, index_parts

    crawl = tmp_path / "cc-index" / "table" / "cc-main" / "warc" / f"crawl={SNAP}"
    for subset in ("warc", "crawldiagnostics", "robotstxt"):
        for k in range(2):
            part = crawl / f"subset={subset}" / f"part-{k:05d}.c000.gz.parquet"
            part.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(_table([{"warc_filename": f"{subset}/{k}.warc.gz"}]), part)

    def parts(given):
        recipe = load_recipe(None, {"fetch": {"mode": "index", "index": str(given)}})
        return index_parts(SNAP, recipe, "http://127.0.0.1:1", Storage())

    warc = sorted(str(p) for p in (crawl / "subset=warc").glob("*.parquet"))
    assert parts(tmp_path / "cc-index") == parts(crawl) == parts(crawl / "subset=warc") == warc
    assert parts(f"{crawl}/*/*.parquet") == warc
    with pytest.raises(IndexSelectionError, match="none of subset=warc"):
        parts(crawl / "subset=robotstxt")
    plain = tmp_path / "mine"  # outside CC's layout every part is read
    plain.mkdir()
    for k in range(3):
        pq.write_table(_table([{}]), plain / f"p{k}.parquet")
    assert len(parts(plain)) == 3

    # without fetch.index: the parts the snapshot's cc-index-table.paths.gz lists, subset=warc ones only
    served = tmp_path / "served"
    listing = served / "crawl-data" / SNAP / "cc-index-table.paths.gz"
    listing.parent.mkdir(parents=True)
    names = [str(p.relative_to(tmp_path)) for p in sorted(crawl.rglob("*.parquet"))] + [f"{crawl.name}/README.txt"]
    listing.write_bytes(gzip.compress("\n".join(names).encode()))
    with MiniCCServer(served) as srv:
        got = index_parts(SNAP, load_recipe(None, {"fetch": {"mode": "index"}}), srv.base_url, Storage())
    assert got == [f"{srv.base_url}/{p}" for p in names if "/subset=warc/" in p]
    assert len(got) == 2


def test_run_with_an_index_that_names_no_part_to_read_is_one_line_exit_2(ray_local, cc, tmp_path, capsys):
    from pipelines.cli import main as cli_main

    mini, _index, srv = cc
    crawl = tmp_path / f"crawl={SNAP}" / "subset=robotstxt"
    crawl.mkdir(parents=True)
    pq.write_table(_table([{}]), crawl / "part-00000.parquet")
    for given, cause in ((tmp_path / "empty", "names no Parquet file"), (crawl.parent, "none of subset=warc")):
        given.mkdir(exist_ok=True)
        recipe = tmp_path / "index.toml"
        recipe.write_text(f'[fetch]\nmode = "index"\nindex = "{given}"\n')
        rc = cli_main(["run", "--snapshot", SNAP, "--base-url", srv.base_url, "--out", str(tmp_path / "out"),
                       "--recipe", str(recipe), "--stages", "extract", "--quiet"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and cause in err and "fetch.index" in err and "Traceback" not in err, err
        assert len(err.splitlines()) == 1, err


def test_ablate_with_an_arm_whose_index_names_no_part_to_read_is_one_line_exit_2(ray_local, cc, tmp_path, capsys):
    """As `run`: the arm's selection error is one line naming the arm and the cause, not a traceback."""
    from pipelines.cli import main as cli_main

    _mini, _index, srv = cc
    given = tmp_path / "empty"
    given.mkdir()
    recipe = tmp_path / "index.toml"
    recipe.write_text(f'[fetch]\nmode = "index"\nindex = "{given}"\n')
    arms = "".join(f'[[arms]]\nname = "{name}"\nrecipe = "{recipe}"\nsnapshot = "{SNAP}"\nbase_url = "{srv.base_url}"\n'
                   for name in ("a", "b"))
    spec = tmp_path / "spec.toml"
    spec.write_text("[ablate]\nseeds = 1\n" + arms)
    rc = cli_main(["ablate", "--spec", str(spec), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("crawlproc ablate:")]  # beside its progress log
    assert len(errors) == 1 and "arm a" in errors[0] and "names no Parquet file" in errors[0], err


def _no_ray_and_an_empty_index(monkeypatch, module, tmp_path) -> tuple[Path, Path]:
    """`module.start_ray` made to fail the test; (an empty folder, a recipe selecting from it as fetch.index)."""

    def no_ray(*_a, **_k):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(module, "start_ray", no_ray)
    given = tmp_path / "empty"
    given.mkdir()
    recipe = tmp_path / "index.toml"
    recipe.write_text(f'[fetch]\nmode = "index"\nindex = "{given}"\n')
    return given, recipe


@pytest.mark.parametrize("case", ["empty index", "missing recipe"])
def test_ablate_refuses_an_arm_it_cannot_prepare_before_starting_ray(tmp_path, capsys, monkeypatch, case):
    """As `run`: an arm whose given `fetch.index` names nothing to read, or whose recipe does not load, is one
    line naming the arm, exit 2, in seconds: Ray is not started."""
    from pipelines.cli import main as cli_main
    from pipelines.commands import common

    given, recipe = _no_ray_and_an_empty_index(monkeypatch, common, tmp_path)
    bad = recipe if case == "empty index" else tmp_path / "no-such-recipe.toml"
    arms = (f'[[arms]]\nname = "a"\nrecipe = "{recipe}"\nsnapshot = "{SNAP}"\nbase_url = "http://127.0.0.1:9"\n'
            f'[[arms]]\nname = "b"\nrecipe = "{bad}"\nsnapshot = "{SNAP}"\nbase_url = "http://127.0.0.1:9"\n')
    if case == "missing recipe":  # arm a is fine: a folder with a part of subset=warc
        part = given / "subset=warc" / "part-0.parquet"
        part.parent.mkdir()
        pq.write_table(_table([{}]), part)
    spec = tmp_path / "spec.toml"
    spec.write_text("[ablate]\nseeds = 1\n" + arms)
    rc = cli_main(["ablate", "--spec", str(spec), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    want = "names no Parquet file" if case == "empty index" else "does not exist"
    assert err.startswith("crawlproc ablate: arm ") and want in err, err
    assert ("arm a:" in err) == (case == "empty index") and ("arm b:" in err) == (case == "missing recipe"), err


def test_run_refuses_an_index_that_names_no_part_before_starting_ray(tmp_path, capsys, monkeypatch):
    """A `fetch.index` with nothing to read is known from a listing of it: refused in seconds, Ray not started."""
    from pipelines.cli import main as cli_main
    from pipelines.commands import run as run_command

    _given, recipe = _no_ray_and_an_empty_index(monkeypatch, run_command, tmp_path)
    rc = cli_main(["run", "--snapshot", SNAP, "--base-url", "http://127.0.0.1:9", "--out", str(tmp_path / "out"),
                   "--recipe", str(recipe), "--stages", "extract", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "names no Parquet file" in err and "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err


def test_an_index_on_an_object_store_gives_its_subset_warc_parts(s3_server):
    """fetch.index as a folder, a glob or one object in a bucket: its Parquet parts of subset=warc, nothing
    else that lies beside them."""
    from crawlproc.recipe import load_recipe
    from crawlproc.store.storage import Storage
    from pipelines.stages.index import IndexSelectionError, index_parts

    storage = Storage()
    crawl = f"{s3_server.bucket('ccindex')}/table/crawl={SNAP}"
    for subset in ("warc", "robotstxt"):
        for k in range(2):
            storage.write_bytes(f"{crawl}/subset={subset}/part-{k:05d}.c000.gz.parquet", b"PAR1")
    storage.write_bytes(f"{crawl}/subset=warc/_SUCCESS", b"")

    def parts(given):
        recipe = load_recipe(None, {"fetch": {"mode": "index", "index": given}})
        return index_parts(SNAP, recipe, "http://127.0.0.1:1", storage)

    warc = [f"{crawl}/subset=warc/part-{k:05d}.c000.gz.parquet" for k in range(2)]
    assert parts(crawl) == parts(f"{crawl}/subset=warc") == parts(f"{crawl}/*/*.parquet") == warc
    assert parts(warc[1]) == [warc[1]]
    with pytest.raises(IndexSelectionError, match="none of subset=warc"):
        parts(f"{crawl}/subset=robotstxt")
    with pytest.raises(IndexSelectionError, match="names no Parquet file"):
        parts(f"{crawl}/nothing-here")
