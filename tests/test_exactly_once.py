"""Exactly once (issue 11): inputs identified by their content, outputs by the recipe that made them, one
command at a time per snapshot. Real WARCs, a real local Ray, the real commands."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crawlproc.store.inputs import RecipeChanged
from crawlproc.store.layout import Layout
from crawlproc.store.lock import Busy, hold
from crawlproc.recipe import load_recipe
from crawlproc.store.storage import Storage
from pipelines.stages.extract import run_extract
from warcs import articles, write_warc

REPO = Path(__file__).resolve().parents[1]
FAST = {"extract": {"engine": "resiliparse"}}


@pytest.fixture(scope="module")
def texts():
    return [a["text"] for a in articles()]


@pytest.fixture(scope="module")
def recipe():
    return load_recipe(None, FAST)


def ids(out: Path, snapshot: str, kind: str = "docs") -> Counter:
    c: Counter = Counter()
    for f in sorted((out / snapshot / kind).glob("*.parquet")):
        c.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return c


def all_ids(out: Path, snapshot: str) -> Counter:
    return ids(out, snapshot, "docs") + ids(out, snapshot, "removed")


def make_warcs(root: Path, texts: list[str]) -> dict[str, Path]:
    """d1/x.warc.gz, d2/x.warc.gz (same name, other pages), d1/y.warc.gz."""
    files = {"d1/x": root / "d1" / "x.warc.gz", "d2/x": root / "d2" / "x.warc.gz", "d1/y": root / "d1" / "y.warc.gz"}
    write_warc(files["d1/x"], [(f"http://a.example/{i}", texts[i]) for i in range(0, 6)], seed=1)
    write_warc(files["d2/x"], [(f"http://b.example/{i}", texts[i]) for i in range(6, 12)], seed=2)
    write_warc(files["d1/y"], [(f"http://c.example/{i}", texts[i]) for i in range(12, 18)], seed=3)
    return files


def run(files, out, recipe, **kw):
    return run_extract([str(f) for f in files], str(out), recipe, dump="S", progress=False, **kw)


def test_a_same_named_file_from_another_folder_is_processed_once_each(ray_local, tmp_path, texts, recipe):
    """Issue 11, item 3: after d1/x is done, extracting d1/x and d2/x must not process d1/x again (nor leave
    its documents twice), and d2/x gets a stem of its own."""
    w = make_warcs(tmp_path / "in", texts)
    out = tmp_path / "out"
    first = run([w["d1/x"]], out, recipe)
    assert first.done == 1
    second = run([w["d1/x"], w["d2/x"]], out, recipe)
    assert second.skipped_done == 1 and second.done == 1
    stems = sorted(Layout(str(out)).snapshot("S").markers.done())
    assert stems[0] == "x" and stems[1].startswith("x-") and len(stems) == 2
    got = all_ids(out, "S")
    assert got and max(got.values()) == 1 and len(got) == 12
    # the clean run of the final state gives the same documents
    clean = tmp_path / "clean"
    run([w["d1/x"], w["d2/x"]], clean, recipe)
    assert ids(clean, "S") == ids(out, "S") and all_ids(clean, "S") == got


def test_a_copy_is_recognised_by_content_and_a_rewritten_file_redone(ray_local, tmp_path, texts, recipe):
    w = make_warcs(tmp_path / "in", texts)
    out = tmp_path / "out"
    run([w["d1/x"], w["d1/y"]], out, recipe)
    copy = tmp_path / "elsewhere" / "renamed.warc.gz"
    copy.parent.mkdir()
    shutil.copy(w["d1/x"], copy)
    again = run([copy, w["d1/x"]], out, recipe)  # the same bytes under another name, and twice in one command
    assert again.done == 0 and again.skipped_done == 1 and again.same_content == 1
    # the file at d1/y is rewritten with other pages: its stem is redone in place, the old pages are gone
    old_y = set(all_ids(out, "S"))
    new_y = write_warc(w["d1/y"], [(f"http://c.example/new/{i}", texts[i]) for i in range(30, 33)], seed=9)
    redo = run([w["d1/y"]], out, recipe)
    assert redo.done == 1
    got = all_ids(out, "S")
    assert max(got.values()) == 1 and len(got) == 6 + 3 and set(new_y) <= set(got)
    assert len(old_y - set(got)) == 6  # the six old pages of y are gone
    assert sorted(Layout(str(out)).snapshot("S").markers.done()) == ["x", "y"]


def test_another_recipe_is_refused_naming_the_keys_and_forced_consistently(ray_local, tmp_path, texts, recipe):
    """Issue 11, item 5: a rerun with another recipe must not mix outputs silently."""
    w = make_warcs(tmp_path / "in", texts)
    out = tmp_path / "out"
    run([w["d1/x"], w["d1/y"]], out, recipe)
    other = load_recipe(None, {**FAST, "gopher_quality": {"min_doc_words": 10}, "language": {"min_score": 0.5}})
    with pytest.raises(RecipeChanged) as e:
        run([w["d1/x"], w["d2/x"]], out, other)
    assert "gopher_quality.min_doc_words" in str(e.value) and "language.min_score" in str(e.value)
    assert "--force" in str(e.value)
    assert len(Layout(str(out)).snapshot("S").markers.done()) == 2  # nothing was touched
    assert Storage().read_json(Layout(str(out)).snapshot("S").recipe_uri) == recipe.to_dict()
    # explain judges each document by the recipe its file was made with, not by the refused one
    from pipelines.inspect.explain import explain_document

    kept = pq.read_table(sorted((out / "S" / "docs").glob("*.parquet"))[0], columns=["id"]).column("id")[0]
    shown = explain_document(str(out), kept.as_py())["matches"][0]
    assert shown["verdict"] == "kept"
    (gq,) = [c for c in shown["checks"] if c["stage"] == "gopher_quality"]
    short = next(v for v in gq["values"] if v["name"] == "gopher_short_doc")
    assert short["threshold"] == recipe.gopher_quality.min_doc_words != 10  # the file's recipe, not the refused
    # a dedup/tokenize setting is not an extract change: no refusal
    run([w["d1/x"]], out, load_recipe(None, {**FAST, "dedup": {"num_partitions": 3}}))
    forced = run([w["d1/x"], w["d2/x"]], out, other, force=True)
    assert forced.done == 2 and forced.removed_files == 1  # y was made with the old recipe and is not given
    clean = tmp_path / "clean"
    run([w["d1/x"], w["d2/x"]], clean, other)
    assert ids(out, "S") == ids(clean, "S") and all_ids(out, "S") == all_ids(clean, "S")
    # each file's marker names the recipe it was made with, recorded under recipes/
    snap = Layout(str(out)).snapshot("S")
    fps = {fp[:8] for fp in snap.markers.done().values()}
    assert len(fps) == 1 and Storage().read_json(snap.recipe_for(fps.pop())) == other.to_dict()


def test_cli_refusal_exits_2_with_the_message(ray_local, tmp_path, texts, capsys):
    from pipelines.cli import main

    w = make_warcs(tmp_path / "in", texts)
    out = tmp_path / "out"
    r1 = tmp_path / "r1.toml"
    r1.write_text('[extract]\nengine = "resiliparse"\n')
    r2 = tmp_path / "r2.toml"
    r2.write_text('[extract]\nengine = "resiliparse"\n[c4]\nmin_num_sentences = 2\n')
    base = ["extract", str(w["d1/x"]), "--out", str(out), "--dump", "S", "--quiet"]
    assert main([*base, "--recipe", str(r1)]) == 0
    capsys.readouterr()
    assert main([*base, "--recipe", str(r2)]) == 2
    assert "c4.min_num_sentences" in capsys.readouterr().err
    assert main([*base, "--recipe", str(r2), "--force"]) == 0


def test_records_without_a_record_id_get_ids_unique_in_the_snapshot(ray_local, tmp_path, texts, recipe):
    """Issue 11, item 10: records at the same offset of two files without WARC-Record-ID must not share an id;
    the ids are the same on every rerun."""
    a, b = tmp_path / "in" / "a.warc.gz", tmp_path / "in" / "b.warc.gz"
    write_warc(a, [(f"http://a.example/{i}", texts[i]) for i in range(4)], with_ids=False)
    write_warc(b, [(f"http://b.example/{i}", texts[i + 4]) for i in range(4)], with_ids=False)
    out = tmp_path / "out"
    run([a, b], out, recipe)
    got = all_ids(out, "S")
    assert len(got) == 8 and max(got.values()) == 1
    assert all(i.startswith("<urn:crawlproc:") for i in got)
    again = tmp_path / "again"
    run([b, a], again, recipe)
    assert all_ids(again, "S") == got


def test_two_commands_on_one_snapshot_the_second_stops_at_once(ray_local, tmp_path, texts):
    """Issue 11, item 6: another command on the same snapshot must not touch its files while one works."""
    out = tmp_path / "out"
    snap = Layout(str(out)).snapshot("S")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]);"
         "from crawlproc.store.lock import hold; from crawlproc.store.storage import Storage;"
         "ctx = hold(Storage(), sys.argv[2], 'snapshot S'); ctx.__enter__(); print('held', flush=True);"
         "time.sleep(60)", str(REPO), snap.lock_uri],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        w = make_warcs(tmp_path / "in", texts)
        proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "extract", str(w["d1/x"]), "--out", str(out),
                               "--dump", "S", "--quiet"], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert proc.returncode == 2
        assert "busy" in proc.stderr and f"pid {holder.pid}" in proc.stderr
        assert not (out / "S" / "docs").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died (SIGKILL): the lock went with it
    with hold(Storage(), snap.lock_uri, "snapshot S"):
        pass


def test_the_lock_is_reentrant_in_one_process_and_exclusive_across(tmp_path):
    uri = str(tmp_path / "_lock")
    with hold(Storage(), uri, "x"), hold(Storage(), uri, "x"):
        code = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                               "from crawlproc.store.lock import hold, Busy; from crawlproc.store.storage import Storage\n"
                               "try:\n  hold(Storage(), sys.argv[2], 'x').__enter__()\nexcept Busy:\n  sys.exit(3)",
                               str(REPO), uri], timeout=60).returncode
        assert code == 3


HOLD = ("import sys, time; sys.path.insert(0, sys.argv[1]);"
        "from crawlproc.store.lock import hold; from crawlproc.store.storage import Storage;"
        "ctx = hold(Storage(), sys.argv[2], sys.argv[3]); ctx.__enter__(); print('held', flush=True);"
        "time.sleep(120)")
TRY = ("import sys; sys.path.insert(0, sys.argv[1]);"
       "from crawlproc.store.lock import hold, Busy; from crawlproc.store.storage import Storage\n"
       "try:\n  hold(Storage(), sys.argv[2], sys.argv[3]).__enter__()\nexcept Busy as e:\n"
       "  print(e, file=sys.stderr); sys.exit(3)")


def test_the_lease_on_an_object_store_is_contested_by_another_process(s3_server, data_dir):
    """On a bucket there is no OS lock: a lease object, refreshed by its holder. A second process (real, not
    a flag in this one) is kept out while the holder lives, named in the message, and let in once it died."""
    import crawlproc.store.lock as lock

    out = s3_server.bucket("locks") + f"/{uuid.uuid4().hex[:8]}"
    uri = Layout(out).snapshot("S").lock_uri
    st = Storage()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(REPO), uri, "snapshot S"], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Busy, match=f"pid {holder.pid} on {socket.gethostname()}"):
            with hold(st, uri, "snapshot S"):
                pass
        # a real command on that snapshot stops at once, naming the holder, and writes nothing
        from pipelines.cli import main

        before = sorted(e.uri for e in st.list(out, recursive=True))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["extract", str(data_dir / "warc" / "dolma_sample-0000.warc.gz"), "--out", out, "--dump", "S",
                         "--quiet"])
        assert code == 2 and "busy" in err.getvalue() and f"pid {holder.pid}" in err.getvalue(), err.getvalue()
        assert sorted(e.uri for e in st.list(out, recursive=True)) == before  # only the holder's lease
        assert len(before) == 1 and before[0].startswith(uri + "/")
    finally:
        holder.kill()  # SIGKILL: its lease object stays behind, no cleanup ran
        holder.wait()
    assert [e.uri for e in st.list(uri, suffix=".json")] == before
    # the holder's process is gone (same host): its lease no longer counts, without waiting LEASE_STALE_S
    with hold(st, uri, "snapshot S"):
        # and this process's lease keeps another process out in turn
        other = subprocess.run([sys.executable, "-c", TRY, str(REPO), uri, "snapshot S"], capture_output=True,
                               text=True, timeout=120)
        assert other.returncode == 3 and f"pid {os.getpid()} on {socket.gethostname()}" in other.stderr
    with hold(st, uri, "snapshot S"):  # released: free again
        pass
    # a lease of another machine whose holder stopped beating is ignored (and left alone)
    st.write_json(uri + "/ghost.json", {"pid": 1, "host": "gone", "beat": time.time() - 10 * lock.LEASE_STALE_S})
    with hold(st, uri, "snapshot S"):
        pass
    assert json.loads(st.read_bytes(uri + "/ghost.json"))["host"] == "gone"


def test_a_run_whose_tokenize_failed_is_not_ok(ray_local, tmp_path, texts, recipe):
    """Issue 11, item 4: `crawlproc run` must not exit 0 when a file failed to tokenize."""
    from pipelines.commands.common import exit_code
    from pipelines.demo.minicc import MiniCCServer, build_minicc
    from pipelines.stages.run import run_snapshot
    from pipelines.stages.chain import dedup_stage, tokenize_stage

    mini = build_minicc(tmp_path / "minicc", snapshot="CC-MAIN-2024-10", files=2)

    def break_one_final_file(ctx) -> None:  # a final/ file that cannot be read, as a damaged disk leaves it
        first = sorted(Path(ctx.snap.uri, "final").glob("*.parquet"))[0]
        first.write_bytes(b"PAR1 not parquet")

    tok_recipe = load_recipe(None, {**FAST, "tokenize": {"vocab_size": 400}})
    with MiniCCServer(mini.root) as srv:
        summary = run_snapshot("CC-MAIN-2024-10", tmp_path / "out", tok_recipe, base_url=srv.base_url,
                               progress=False, chain=[("dedup", dedup_stage), ("break", break_one_final_file),
                                                      ("tokenize", tokenize_stage)])
    assert not summary.ok and exit_code(summary) == 1
    assert any(k.startswith("tokenize ") for k in summary.failed)
