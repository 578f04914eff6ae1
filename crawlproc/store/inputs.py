"""Which input files of a snapshot still need the extract stage, and under which stem (output name).

An input is identified by its content, not its path: a local or object-store file by its content fingerprint
(crawlproc.store.fingerprint.file_fingerprint), a file of a Common Crawl listing by its listed path (CC never
rewrites a published file). A file's marker `_done/<stem>.<recipe8><input8>.json` names the extract recipe's
fingerprint and the input's, so one LIST of `_done/` says what is done and with which recipe.

The rules, applied in this order:
- A file whose content and recipe match a done marker is done, whatever its path or stem (a copy of a done
  file is not processed again; two equal files in one command are processed once).
- A snapshot holds the output of one extract recipe. When done files were made with another recipe, the
  plan is refused (RecipeChanged names the keys that changed) unless `force`: then every file of the other
  recipe is redone if it is among the inputs, and its outputs are removed otherwise, so that the snapshot is
  what one clean run of these inputs with this recipe gives.
- A file keeps the stem of its name (`x.warc.gz` -> `x`). When that stem is done with another content:
  the same source (the file at that path was rewritten) redoes the stem in place; another source (a
  same-named file from another folder) gets `x-<input8>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crawlproc.store.fingerprint import changed_keys
from crawlproc.store.layout import Snapshot


class RecipeChanged(Exception):
    """Done files of the snapshot were made with another extract recipe."""

    def __init__(self, snapshot: str, changed: list[str], files: int):
        self.snapshot, self.changed, self.files = snapshot, changed, files
        keys = ", ".join(changed[:12]) + (" ..." if len(changed) > 12 else "") if changed else "unknown keys"
        super().__init__(
            f"{files} file(s) of snapshot {snapshot!r} were extracted with another recipe (changed: {keys}). "
            "Use the recipe they were made with, another --dump/--snapshot (or --out), or --force to redo "
            "this snapshot with the new recipe (files done with the old one and not among these inputs "
            "are removed)."
        )


@dataclass
class Candidate:
    source: str  # the path or URI as given, or the listing line
    name: str  # the stem its file name gives
    input_fp: str  # 8+ hex digits identifying its content
    extra: dict = field(default_factory=dict)  # what the caller needs back (a listing entry, ...)


@dataclass
class Planned:
    candidate: Candidate
    stem: str
    fingerprint: str  # recipe8 + input8: the marker's fingerprint


@dataclass
class Plan:
    todo: list[Planned] = field(default_factory=list)
    done: list[Planned] = field(default_factory=list)
    same_content: list[Candidate] = field(default_factory=list)  # equal to another input of this plan
    remove: list[str] = field(default_factory=list)  # stems of another recipe, not among the inputs (force)


def plan_inputs(snapshot: Snapshot, candidates: list[Candidate], recipe_fp: str, current_recipe: dict,
                force: bool = False, view=lambda d: d) -> Plan:
    """Decide what to do with each candidate; see the module docstring. `current_recipe` is the recipe as a
    dict; `view` keeps the part of a recipe dict that the fingerprint covers (to name the changed keys)."""
    recipe8 = recipe_fp[:8]
    done = snapshot.markers.done()  # stem -> fingerprint
    stem_of_fp = {fp: stem for stem, fp in done.items()}
    other = {stem: fp for stem, fp in done.items() if fp[:8] != recipe8}
    if other and not force:
        old_fp = sorted({fp[:8] for fp in other.values()})[0]
        old = snapshot.storage.read_json(snapshot.recipe_for(old_fp))
        changed = changed_keys(view(old), view(current_recipe)) if old else []
        raise RecipeChanged(snapshot.name, changed, len(other))

    plan = Plan()
    taken: dict[str, str] = {}  # stem -> input fp, for this plan
    seen: set[str] = set()
    for c in sorted(candidates, key=lambda c: c.source):
        input8 = c.input_fp[:8]
        fp = recipe8 + input8
        if fp in seen:
            plan.same_content.append(c)
            continue
        seen.add(fp)
        if fp in stem_of_fp:
            plan.done.append(Planned(c, stem_of_fp[fp], fp))
            taken[stem_of_fp[fp]] = input8
            continue
        stem = c.name
        if stem in taken and taken[stem] != input8:
            stem = f"{c.name}-{input8}"
        elif stem in done and done[stem][8:] != input8:
            marker = snapshot.markers.read(stem, done[stem]) or {}
            if marker.get("source") != c.source:
                stem = f"{c.name}-{input8}"
        taken[stem] = input8
        plan.todo.append(Planned(c, stem, fp))
    redone = {p.stem for p in plan.todo}
    plan.remove = sorted(s for s in other if s not in redone)
    return plan
