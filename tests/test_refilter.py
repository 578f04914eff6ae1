"""`crawlproc refilter` (issue 31): a changed filter threshold re-applied to the stored extraction gives exactly
what extracting the WARCs again with that recipe gives; it refuses a change of the extraction itself; a crash
in the middle of a file's switch is finished by the next run; every removed document keeps its text."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from crawlproc.extract.refilter import RefilterError, refilter_file
from crawlproc.recipe import recipe_from_dict
from crawlproc.store.inputs import RecipeChanged
from crawlproc.store.layout import Layout
from crawlproc.warc.charset import decode_html
from pipelines.cli import main as crawlproc
from pipelines.stages.extract import run_extract
from pipelines.stages.refilter import run_refilter
from tests.warcs import response_record

DATA = Path(__file__).parent / "data"
# the per-document budget is wall-clock: no timeout on a busy machine; the pre-check on (fineweb-fast's), so that
# some removals were judged on resiliparse's main text
BASE = {"extract": {"timeout_s": 60.0}, "language": {"precheck": True}}
# a threshold of each kind: Gopher quality's word count, C4's line filter (C4 edits the text), FineWeb's
CHANGED = {**BASE, "gopher_quality": {"min_doc_words": 150}, "c4": {"min_words_per_line": 5},
           "fineweb_quality": {"line_punct_thr": 0.3}}


@pytest.fixture(scope="module")
def warcs(tmp_path_factory) -> list[str]:
    """Real pages: the test WARCs, and one of multilingual pages (the pre-check removes most of them)."""
    d = tmp_path_factory.mktemp("warcs")
    files = [str(p) for p in sorted((DATA / "warc").glob("*.warc.gz")) if "dolma" in p.name or "cmoncrawl" in p.name]
    pages = sorted((DATA / "html_multilingual").glob("*.gz"))[:30]
    with open(d / "multi.warc.gz", "wb") as f:
        for i, p in enumerate(pages):
            html = decode_html(gzip.decompress(p.read_bytes()), None)[0]
            f.write(gzip.compress(response_record(f"https://site{i}.example.org/p", html.encode(),
                                                  f"<urn:uuid:00000000-0000-4000-8000-{i:012d}>"), mtime=0))
    return [*files, str(d / "multi.warc.gz")]


def outputs(out: Path, dump: str) -> dict:
    """Every file's docs/, removed/ and extracted/ rows (as sets of tuples) and its counts, by stem."""
    snap = Layout(str(out)).snapshot(dump)
    got = {}
    for stem, fp in snap.markers.done().items():
        stats = dict(snap.markers.read(stem, fp)["stats"])
        for k in ("seconds", "host", "pid"):
            stats.pop(k)
        got[stem] = {"fp": fp, "stats": stats}
        for kind in ("docs", "removed", "extracted"):
            rows = pq.read_table(snap.path(kind, stem)).to_pylist()
            got[stem][kind] = [tuple(sorted(r.items())) for r in rows]
    return got


def test_refilter_equals_a_new_extract_and_keeps_every_text(ray_local, warcs, tmp_path):
    old, new = recipe_from_dict(BASE), recipe_from_dict(CHANGED)
    run_extract(warcs, str(tmp_path / "a"), old, dump="S", progress=False)
    before = outputs(tmp_path / "a", "S")
    with pytest.raises(RecipeChanged, match="crawlproc refilter"):  # extract itself points to refilter
        run_extract(warcs, str(tmp_path / "a"), new, dump="S", progress=False)
    summary = run_refilter(str(tmp_path / "a"), "S", new, progress=False)
    assert summary.ok and summary.refiltered == len(warcs) and summary.already == 0
    assert {"gopher_quality.min_doc_words", "c4.min_words_per_line", "fineweb_quality.line_punct_thr"} <= set(
        summary.changed)
    run_extract(warcs, str(tmp_path / "b"), new, dump="S", progress=False)  # the reference: extracted anew
    got, want = outputs(tmp_path / "a", "S"), outputs(tmp_path / "b", "S")
    assert got == want
    assert sum(len(v["docs"]) for v in got.values()) != sum(len(v["docs"]) for v in before.values())
    assert any(v["extracted"] for v in got.values())  # C4 edited texts: their originals are kept
    # every removed document has its text, the pre-check's removals included (resiliparse's main text)
    removed = [dict(r) for v in got.values() for r in v["removed"]]
    precheck = [r for r in removed if (r["removed_reason"] or "").startswith("precheck:")]
    assert len(precheck) >= 10 and all(r["text"] for r in precheck)
    assert all(r["text"] for r in removed if r["removed_by"] not in ("url_filter", "extract"))
    # a rerun has nothing to do; `crawlproc extract` with the new recipe finds every file done
    assert run_refilter(str(tmp_path / "a"), "S", new, progress=False).already == len(warcs)
    assert run_extract(warcs, str(tmp_path / "a"), new, dump="S", progress=False).skipped_done == len(warcs)
    assert not (tmp_path / "a" / "S" / "refilter").exists()


def test_refilter_refuses_a_change_of_the_extraction_itself(ray_local, warcs, tmp_path, capsys):
    run_extract(warcs[:1], str(tmp_path / "o"), recipe_from_dict(BASE), dump="S", progress=False)
    toml = tmp_path / "r.toml"
    toml.write_text('[extract]\ntimeout_s = 60.0\n[language]\nmin_score = 0.5\n[gopher_quality]\nmin_doc_words = 10\n')
    assert crawlproc(["refilter", "--out", str(tmp_path / "o"), "--snapshot", "S", "--recipe", str(toml)]) == 2
    err = capsys.readouterr().err
    assert "language.min_score" in err and "gopher_quality" not in err and "--force" in err
    before = outputs(tmp_path / "o", "S")
    with pytest.raises(RefilterError, match="no extracted files"):
        run_refilter(str(tmp_path / "o"), "EMPTY", recipe_from_dict(BASE), progress=False)
    assert outputs(tmp_path / "o", "S") == before


def test_a_switch_stopped_half_way_is_finished_by_the_next_run(ray_local, warcs, tmp_path, monkeypatch):
    old, new = recipe_from_dict(BASE), recipe_from_dict(CHANGED)
    run_extract(warcs[:2], str(tmp_path / "a"), old, dump="S", progress=False)
    run_extract(warcs[:2], str(tmp_path / "b"), new, dump="S", progress=False)
    layout = Layout(str(tmp_path / "a"))
    snap = layout.snapshot("S")
    stem, fp = sorted(snap.markers.done().items())[0]
    from crawlproc.extract.file import extract_fingerprint
    from crawlproc.store.storage import Storage

    real_move, moves = Storage.move, []

    def crash_after_first_move(self, src, dst):  # the process dies between two renames of the switch
        if moves:
            raise KeyboardInterrupt("killed")
        moves.append(dst)
        return real_move(self, src, dst)

    monkeypatch.setattr(Storage, "move", crash_after_first_move)
    with pytest.raises(KeyboardInterrupt):
        refilter_file(stem, fp, extract_fingerprint(new) + fp[8:], layout, new, "S")
    monkeypatch.setattr(Storage, "move", real_move)
    assert stem not in snap.markers.done() and len(moves) == 1  # half-switched: no marker, one file moved
    summary = run_refilter(str(tmp_path / "a"), "S", new, progress=False)
    assert summary.finished == 1 and summary.refiltered == 1
    assert outputs(tmp_path / "a", "S") == outputs(tmp_path / "b", "S")


def test_a_snapshot_extracted_before_extracted_text_was_kept_is_refused_by_file(ray_local, warcs, tmp_path):
    run_extract(warcs[:1], str(tmp_path / "o"), recipe_from_dict(BASE), dump="S", progress=False)
    shutil.rmtree(tmp_path / "o" / "S" / "extracted")
    summary = run_refilter(str(tmp_path / "o"), "S", recipe_from_dict(CHANGED), progress=False)
    assert not summary.ok and "--force" in next(iter(summary.failed.values()))
    assert len(Layout(str(tmp_path / "o")).snapshot("S").markers.done()) == 1  # the file is as it was
