"""Exactly once over command sequences (issues 11 and 24): hypothesis drives the real commands on two real
snapshots (the newer one recrawls pages of the older one) and checks that, once everything is brought up to
date, every id in final/ and in the token shards is there once, and that the ids equal those of ONE clean run
of the final state (a fresh output folder, each snapshot extracted once, deduplicated oldest first, tokenized).
The oracle is that clean run, never the bookkeeping of the code under test.

Every sequence starts with an extract; then any of:
- extract (a snapshot, files from its pool including a same-named one, recipe A or B, with or without --force);
- dedup of either snapshot with `dedup.scope = "snapshot"` or `"all"`, in any order;
- tokenize (every snapshot whose dedup finished);
- dedup stopped between two waves (`run_dedup(stop_after=...)`);
- a real kill: `crawlproc extract`, `crawlproc dedup` or `crawlproc tokenize` run in its own process and
  SIGKILLed mid-stage, after the K-th unit of a wave (tests/crashpoint.py), its tasks dying mid-write;
- two commands at once: a real process holds the snapshot's (or the token set's) lock while a second command
  is run; the second must stop with exit 2 naming the holder's pid, having touched nothing; then the first
  finishes;
- hand-made crash states: a file's outputs without its marker, a dead writer's temporary file, a dedup
  without its last commit.
The last `crawlproc run` (the finish) brings every snapshot up to date with one final scope, deduplicating the
snapshots in a drawn order; under scope "all" the older crawl keeps each cluster's survivor whatever the order.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from crashpoint import Paused, run_killed
from crawlproc.store.inputs import RecipeChanged
from pipelines.recipes import resolve_recipe
from pipelines.stages.dedup import WAVES, DedupError, StopAfter, run_dedup
from pipelines.stages.extract import run_extract
from pipelines.stages.tokenize import TokenizeError, run_tokenize
from tokenizer.tokenset import open_token_set
from warcs import articles, write_warc

OLD, NEW = "CC-MAIN-2023-50", "CC-MAIN-2024-10"  # crawl names sort by date: OLD is the older crawl
SNAPS = (OLD, NEW)
POOL = {OLD: ["o1/x", "o1/y", "o2/x"], NEW: ["n1/x", "n2/y"]}  # o2/x: the same name as o1/x, other content
SCOPES = ("snapshot", "all")
VARIANTS = ("A", "B")  # two extract recipes: B drops short documents
BASE_TOML = """
[extract]
engine = "resiliparse"
[tokenize]
vocab_size = 400
val_fraction = 0.2
[dedup]
num_partitions = 2
scope = "{scope}"
"""
B_TOML = "[gopher_quality]\nmin_doc_words = 200\n"
# Where a real kill lands: the K-th unit of a wave (the stage runner's stage name, or its start).
DEDUP_KILLS = ("dedup signatures:1", "dedup shuffle:1", "dedup edges:1", "dedup components:1",
               "dedup finalize:1", "dedup index:1")
TOKENIZE_KILLS = ("tokenize:0", "tokenize:1", "tokenize:2")


def build_pool(root: Path) -> dict[str, Path]:
    texts = [a["text"] for a in articles()]
    pages = {
        "o1/x": [(f"http://a.example/{i}", texts[i]) for i in range(0, 5)],
        "o1/y": [(f"http://b.example/{i}", texts[i]) for i in range(5, 9)] + [("http://b.example/dup", texts[0])],
        "o2/x": [(f"http://c.example/{i}", texts[i]) for i in range(9, 12)] + [("http://c.example/dup", texts[5])],
        # the newer crawl: pages of o1/x and o2/x crawled again (new record ids), and new ones
        "n1/x": [(f"http://a.example/{i}", texts[i]) for i in range(0, 3)]
        + [(f"http://d.example/{i}", texts[i]) for i in range(12, 14)],
        "n2/y": [(f"http://e.example/{i}", texts[i]) for i in range(14, 17)] + [("http://c.example/9", texts[9])],
    }
    files = {}
    for seed, (name, docs) in enumerate(pages.items()):
        files[name] = root / f"{name}.warc.gz"
        write_warc(files[name], docs, seed=seed + 1)
    return files


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return build_pool(tmp_path_factory.mktemp("pool"))


@pytest.fixture(scope="module")
def recipes(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """(variant, scope) -> a recipe file: the commands run in their own processes read the same files."""
    root = tmp_path_factory.mktemp("recipes")
    out = {}
    for v in VARIANTS:
        for s in SCOPES:
            out[v, s] = root / f"{v}-{s}.toml"
            out[v, s].write_text(BASE_TOML.format(scope=s) + (B_TOML if v == "B" else ""))
    return out


@pytest.fixture(scope="module")
def clean_runs() -> dict:
    return {}  # the clean run of a final state, computed once per state


def quiet(_msg) -> None:
    pass


def done_markers(out: Path, snap: str) -> list[Path]:
    d = out / snap / "_done"
    return sorted(d.glob("*.json")) if d.is_dir() else []


def tree(root: Path) -> dict[str, int]:
    """Every file under root with its modification time: what a refused command must leave as it was."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()} \
        if root.is_dir() else {}


class World:
    """The commands a user types, and what the final state should be made of."""

    def __init__(self, out: Path, pool: dict[str, Path], recipes: dict, address: str):
        self.out, self.pool, self.recipes, self.address = out, pool, recipes, address
        self.variant: dict[str, str | None] = {s: None for s in SNAPS}  # each snapshot's extract recipe
        self.extracted: dict[str, set[str]] = {s: set() for s in SNAPS}  # files whose documents it holds
        self.kills: list[tuple] = []  # (point, landed, exit status, the end of its stderr)
        self.contested = 0  # second commands refused because another one held the lock

    def recipe(self, variant: str, scope: str = "snapshot"):
        return resolve_recipe(str(self.recipes[variant, scope]))

    def current(self, snap: str) -> str:
        return self.variant[snap] or "A"

    # --- the commands, in this process ---

    def extract(self, snap: str, names: list[str], variant: str, force: bool) -> None:
        try:
            run_extract([str(self.pool[n]) for n in names], str(self.out), self.recipe(variant), dump=snap,
                        force=force, progress=False)
        except RecipeChanged:
            assert self.variant[snap] not in (None, variant) and not force
            return
        self._extracted(snap, names, variant)

    def _extracted(self, snap: str, names: list[str], variant: str) -> None:
        if variant != self.variant[snap]:  # forced (or first): the snapshot is redone, other files removed
            self.variant[snap], self.extracted[snap] = variant, set()
        self.extracted[snap] |= set(names)

    def dedup(self, snap: str, scope: str, stop_after: str | None = None) -> None:
        try:
            run_dedup(self.out, snap, self.recipe(self.current(snap), scope), stop_after=stop_after, log=quiet)
        except StopAfter:
            assert stop_after is not None
        except DedupError as e:
            # a snapshot (this one, or a newer one redone after it) whose every marker a crash took: refused
            # with the fix, nothing to deduplicate
            assert any(s in str(e) and not done_markers(self.out, s) for s in SNAPS), str(e)
            assert "crawlproc extract" in str(e), str(e)

    def stop(self, snap: str, scope: str, wave: str) -> None:
        self.dedup(snap, scope, stop_after=wave)

    def tokenize(self) -> None:
        try:
            run_tokenize(str(self.out), self.recipe("A"), progress=False, log=quiet)
        except TokenizeError:
            pass  # nothing deduplicated yet, or changed since: refused, nothing written

    # --- real processes ---

    def command(self, what: str, snap: str = "", scope: str = "snapshot", names: list[str] | None = None) -> list:
        """The command line of `crawlproc <what>` as a user types it."""
        tail = ["--address", self.address]
        if what != "dedup":
            tail.append("--quiet")
        if what == "extract":
            recipe = self.recipes[self.current(snap), scope]
            return ["extract", *[str(self.pool[n]) for n in names], "--out", str(self.out), "--dump", snap,
                    "--recipe", str(recipe), *tail]
        if what == "dedup":
            return ["dedup", "--out", str(self.out), "--snapshot", snap,
                    "--recipe", str(self.recipes[self.current(snap), scope]), *tail]
        return ["tokenize", "--out", str(self.out), "--recipe", str(self.recipes["A", scope]), *tail]

    def kill(self, what: str, snap: str, scope: str, names: list[str], point: str) -> None:
        """`crawlproc <what>` SIGKILLed at `point`; an extract is then what the user will run again."""
        got = run_killed(self.command(what, snap, scope, names), point)
        assert got.landed or got.returncode in (0, 1, 2), got.stderr[-3000:]
        assert "Traceback" not in got.stderr, got.stderr[-3000:]
        self.kills.append((point, got.landed, got.returncode, got.stderr[-1500:]))
        with contextlib.suppress(InvalidArgument):  # outside a hypothesis example (a named sequence)
            event(f"kill {point}: {'landed' if got.landed else 'not reached'}")
        if what == "extract":  # with the snapshot's own recipe, never refused
            self._extracted(snap, names, self.current(snap))

    def both(self, lock: str, snap: str, holder: str) -> None:
        """Two commands at once on one lock: `holder` runs in its own process and is held right after taking
        the lock; the second command (this process) must stop at once, naming it, and change nothing."""
        names = (sorted(self.extracted[snap]) or POOL[snap][:1]) if lock == "snapshot" else []
        second = {"extract": "dedup", "dedup": "extract", "tokenize": "tokenize"}[holder]
        folder = self.out.parent / f"{self.out.name}-pause-{len(os.listdir(self.out.parent))}"
        first = Paused(self.command(holder, snap, "snapshot", names), folder)
        try:
            before = tree(self.out)
            err = io.StringIO()
            from pipelines.cli import main

            with contextlib.redirect_stderr(err):
                code = main(self.command(second, snap, "snapshot", names))
            assert code == 2, err.getvalue()
            assert "busy" in err.getvalue() and f"pid {first.pid} on {socket.gethostname()}" in err.getvalue(), \
                err.getvalue()
            assert tree(self.out) == before  # it stopped before touching anything
            self.contested += 1
        except BaseException:
            first.kill()
            raise
        code, err = first.go()
        assert "busy" not in err and "Traceback" not in err, err[-3000:]
        if holder == "extract":
            assert code == 0, err[-3000:]
            self._extracted(snap, names, self.current(snap))

    # --- crash states made by hand ---

    def crash(self, kind: int, snap: str) -> None:
        s = self.out / snap
        if kind == 0:  # killed between a file's outputs and its marker
            markers = done_markers(self.out, snap)
            if markers:
                markers[0].unlink()
        elif kind == 1:  # a dead writer's temporary file
            dead = subprocess.Popen([sys.executable, "-c", "pass"])
            dead.wait()
            (s / "docs").mkdir(parents=True, exist_ok=True)
            (s / "docs" / f".x.parquet.{socket.gethostname()}-{dead.pid}-0badc0de.tmp").write_bytes(b"half")
        else:  # killed before dedup's last commit
            (s / "dedup" / "_done.json").unlink(missing_ok=True)

    # --- the end ---

    def finish(self, scope: str, order: tuple[str, ...]) -> None:
        """Bring everything up to date, as a user's last `crawlproc run` of each snapshot does: each must go
        through (no refusal, no failure)."""
        live = [s for s in order if self.extracted[s]]
        for snap in live:
            run_extract([str(self.pool[n]) for n in sorted(self.extracted[snap])], str(self.out),
                        self.recipe(self.variant[snap]), dump=snap, progress=False)
        for snap in live:
            run_dedup(self.out, snap, self.recipe(self.variant[snap], scope), log=quiet)
        summary = run_tokenize(str(self.out), self.recipe("A", scope), progress=False, log=quiet)
        assert summary.ok, summary.failed

    def state(self, scope: str) -> tuple:
        return scope, tuple((s, self.variant[s] if self.extracted[s] else None, tuple(sorted(self.extracted[s])))
                            for s in SNAPS)


def ids_in(out: Path) -> tuple[Counter, Counter]:
    """Every id in final/ of every snapshot, and every id in the token set's shards (as its reader sees
    them), counted; the token folder must hold no shard its manifest does not list."""
    final: Counter = Counter()
    for snap in SNAPS:
        for f in sorted((out / snap / "final").glob("*.parquet")):
            final.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    tokens: Counter = Counter()
    if not final:
        return final, tokens
    ts = open_token_set(str(out / "tokens" / "bpe"))
    listed = {s["file"] for s in ts.shards()}
    assert {p.name for p in (out / "tokens" / "bpe").glob("*.parquet")} == listed
    for s in ts.shards():
        tokens.update(pq.read_table(out / "tokens" / "bpe" / s["file"], columns=["id"]).column("id").to_pylist())
    return final, tokens


def clean_run(state: tuple, pool, recipes, address, root: Path) -> tuple[Counter, Counter]:
    """One uninterrupted run of the final state in a fresh folder: each snapshot extracted once, the
    snapshots deduplicated oldest first, then tokenized."""
    scope, snaps = state
    clean = World(root, pool, recipes, address)
    for snap, variant, names in snaps:
        if names:
            clean.variant[snap], clean.extracted[snap] = variant, set(names)
    clean.finish(scope, SNAPS)
    return ids_in(root)


def check(world: World, scope: str, order, clean_runs, tmp_path_factory, what) -> None:
    world.finish(scope, order)
    final, tokens = ids_in(world.out)
    assert final and max(final.values()) == 1, (final, what)  # every document in final/ once
    assert tokens and max(tokens.values()) == 1, (tokens, what)  # and in the shards once
    assert set(tokens) == set(final), what
    key = world.state(scope)
    if key not in clean_runs:
        clean_runs[key] = clean_run(key, world.pool, world.recipes, world.address, tmp_path_factory.mktemp("clean"))
    clean_final, clean_tokens = clean_runs[key]
    assert set(final) == set(clean_final), what  # the same survivors as the clean run
    assert set(tokens) == set(clean_tokens), what


# --- the strategy ------------------------------------------------------------------------------------------


def _files(snap: str):
    return st.lists(st.sampled_from(POOL[snap]), min_size=1, max_size=len(POOL[snap]), unique=True)


snap_st = st.sampled_from(SNAPS)
scope_st = st.sampled_from(SCOPES)
extract_op = snap_st.flatmap(lambda s: st.tuples(st.just("extract"), st.just(s), _files(s),
                                                 st.sampled_from(VARIANTS), st.booleans()))
kill_op = st.one_of(
    snap_st.flatmap(lambda s: st.tuples(st.just("kill"), st.just("extract"), st.just(s), st.just("snapshot"),
                                        _files(s), st.just("extract:1"))),
    st.tuples(st.just("kill"), st.just("dedup"), snap_st, scope_st, st.just([]), st.sampled_from(DEDUP_KILLS)),
    st.tuples(st.just("kill"), st.just("tokenize"), st.just(""), scope_st, st.just([]),
              st.sampled_from(TOKENIZE_KILLS)),
)
ops = st.one_of(
    extract_op,
    st.tuples(st.just("dedup"), snap_st, scope_st),
    st.tuples(st.just("tokenize")),
    st.tuples(st.just("stop"), snap_st, scope_st, st.sampled_from(WAVES)),
    kill_op,
    st.one_of(st.tuples(st.just("both"), st.just("snapshot"), snap_st, st.sampled_from(["extract", "dedup"])),
              st.tuples(st.just("both"), st.just("tokens"), st.just(OLD), st.just("tokenize"))),
    st.tuples(st.just("crash"), st.integers(0, 2), snap_st),
)


def play(world: World, sequence) -> None:
    for op in sequence:
        getattr(world, op[0])(*op[1:])


# SEQ_EXAMPLES=200 searches longer with fresh random sequences; CI runs the examples below and 16 drawn ones.
@settings(max_examples=int(os.environ.get("SEQ_EXAMPLES", 16)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
          derandomize="SEQ_EXAMPLES" not in os.environ)
@given(first=extract_op, rest=st.lists(ops, max_size=5), scope=scope_st, order=st.permutations(SNAPS))
@example(first=("extract", OLD, ["o1/x"], "A", False), rest=[("crash", 0, OLD), ("dedup", OLD, "snapshot")],
         scope="snapshot", order=(OLD, NEW))  # found with SEQ_EXAMPLES=300
@example(first=("extract", OLD, ["o1/x", "o2/x"], "A", False),  # the issue's: A by snapshot, then B with "all"
         rest=[("extract", NEW, ["n1/x", "n2/y"], "A", False), ("dedup", OLD, "snapshot"), ("dedup", NEW, "all"),
               ("tokenize",), ("dedup", OLD, "all")], scope="all", order=(NEW, OLD))
@example(first=("extract", NEW, ["n1/x"], "B", False),
         rest=[("kill", "dedup", NEW, "all", [], "dedup edges:1"), ("extract", OLD, ["o1/x", "o1/y"], "A", False),
               ("stop", OLD, "all", "components"), ("tokenize",)], scope="all", order=(OLD, NEW))
def test_any_command_sequence_ends_exactly_once(ray_local, pool, recipes, clean_runs, tmp_path_factory, first,
                                                rest, scope, order):
    out = tmp_path_factory.mktemp("seq") / "out"
    out.mkdir()
    world = World(out, pool, recipes, ray_local.get_runtime_context().gcs_address)
    sequence = [first, *rest]
    play(world, sequence)
    check(world, scope, order, clean_runs, tmp_path_factory, (sequence, scope, order))
    shutil.rmtree(out.parent, ignore_errors=True)


# Named sequences: regressions that failed before their fix, and the crash points CI must always reach (each
# of their kills must land: a kill after the process ended would test nothing).
REGRESSIONS = {
    "tokenize_before_and_after_dedup": [("extract", OLD, ["o1/x", "o1/y"], "A", False), ("tokenize",),
                                        ("dedup", OLD, "snapshot"), ("tokenize",)],
    "same_named_file_added_later": [("extract", OLD, ["o1/x"], "A", False), ("dedup", OLD, "snapshot"),
                                    ("tokenize",), ("extract", OLD, ["o1/x", "o2/x"], "A", False)],
    "files_added_after_tokenize": [("extract", OLD, ["o1/x"], "A", False), ("dedup", OLD, "snapshot"),
                                   ("tokenize",), ("extract", OLD, ["o1/y"], "A", False), ("tokenize",)],
    "forced_recipe_change_drops_old_files": [("extract", OLD, ["o1/x", "o1/y"], "A", False),
                                             ("dedup", OLD, "snapshot"), ("tokenize",),
                                             ("extract", OLD, ["o2/x"], "B", True)],
    "older_snapshot_deduplicated_last_by_snapshot_then_all": [
        ("extract", NEW, ["n1/x", "n2/y"], "A", False), ("extract", OLD, ["o1/x", "o2/x"], "A", False),
        ("dedup", OLD, "snapshot"), ("dedup", NEW, "all"), ("tokenize",), ("dedup", OLD, "all"), ("tokenize",)],
    "killed_mid_dedup_then_mid_tokenize": [
        ("extract", OLD, ["o1/x", "o1/y"], "A", False), ("extract", NEW, ["n1/x", "n2/y"], "A", False),
        ("dedup", OLD, "all"), ("kill", "dedup", NEW, "all", [], "dedup finalize:1"),
        ("dedup", NEW, "all"), ("kill", "tokenize", "", "all", [], "tokenize:1")],
    "killed_while_indexing_the_older_snapshot": [
        ("extract", OLD, ["o1/x", "o2/x"], "A", False), ("extract", NEW, ["n2/y"], "A", False),
        ("dedup", OLD, "snapshot"), ("kill", "dedup", NEW, "all", [], "dedup index:1"),
        ("kill", "extract", NEW, "snapshot", ["n1/x", "n2/y"], "extract:1")],
    "two_commands_on_a_snapshot_and_on_the_token_set": [
        ("extract", OLD, ["o1/x"], "A", False), ("both", "snapshot", OLD, "dedup"), ("tokenize",),
        ("both", "snapshot", NEW, "extract"), ("dedup", NEW, "all"), ("both", "tokens", OLD, "tokenize")],
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_named_sequence(ray_local, pool, recipes, clean_runs, tmp_path_factory, name):
    out = tmp_path_factory.mktemp(name) / "out"
    out.mkdir()
    world = World(out, pool, recipes, ray_local.get_runtime_context().gcs_address)
    play(world, REGRESSIONS[name])
    assert all(k[1] for k in world.kills), world.kills  # every kill interrupted a running command
    assert world.contested == sum(op[0] == "both" for op in REGRESSIONS[name])
    scope = "all" if any("all" in op for op in REGRESSIONS[name]) else "snapshot"
    check(world, scope, (NEW, OLD), clean_runs, tmp_path_factory, name)

