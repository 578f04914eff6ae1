"""What `crawlproc explain` says about the classifiers: a document's scores against the thresholds its
snapshot was classified with (<snapshot>/classify/summary.json), and whether a classifier removed it."""

from __future__ import annotations

from crawlproc.classify.apply import score_checks
from crawlproc.store.layout import Snapshot
from pipelines.inspect.report.classify import rule_text

KINDS = ("classified_removed", "classified")  # the folders explain searches besides its own


def explain_scores(result: dict, found: dict[str, dict], snap: Snapshot) -> None:
    """Add `result["classifiers"]` (one check per classifier) when the document was classified; when a
    classifier removed it, that becomes the verdict. `found`: kind -> hit, as explain found them."""
    hit = found.get("classified_removed") or found.get("classified")
    summary = snap.storage.read_json(snap.classify.summary_uri) if hit is not None else None
    try:
        classifiers = {c["name"]: c for c in summary["classifiers"]}
    except (KeyError, TypeError):  # no summary (classify has not finished), or not one we wrote
        return
    rules = [c["rule"] for c in classifiers.values()]
    result["classifiers"] = score_checks(hit["row"], rules)
    if "classified_removed" in found and result.get("verdict") == "kept":
        reason = hit["row"].get("removed_reason") or ""
        name = reason.split(":")[1] if reason.count(":") else reason
        check = next((c for c in result["classifiers"] if c["name"] == name), None)
        how = (f"score {check['score']:.4g}, needs {rule_text(classifiers[name]['rule'])}"
               if check and check["score"] is not None else "it has no text to score")
        result.update(verdict="removed", stage="classify", reason=reason,
                      summary=f"passed every filter and dedup, then removed by the classifier {name} ({how})")


def score_lines(match: dict) -> list[str]:
    """The terminal lines for `match["classifiers"]`."""
    lines = []
    for c in match.get("classifiers") or []:
        score = "-" if c["score"] is None else f"{c['score']:.4g}"
        rule = f"needs {rule_text(c)}" if c["active"] else "scores only"
        mark = "ok" if c["passed"] else "FAIL x"
        lines.append(f"  [classifier {c['name']}] {mark:>6}  score {score:>10}  {rule}")
    return lines
