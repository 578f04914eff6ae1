"""Benchmark items: the one reader of the evaluation suite's files, for the trainer's evaluation (which scores
them) and for decontamination (which keeps their text out of the data).

A task is one JSONL file, one item per line:

    {"id": "hellaswag-val-0042", "context": "A man is on a roof. He", "choices": [" climbs down.", " eats."],
     "gold": 0}

- `id`: unique within the file; it names the item in scores and in decontamination removals.
- `context`: the text the model is given (for a question, the question with its prompt words).
- `choices`: the continuations, concatenated to the context exactly as written (so a choice that follows
  a word starts with its space). A task whose items have one choice each is scored by whether the model's
  greedy continuation is that choice (LAMBADA's last word).
- `gold`: the index of the right choice.

Optional few-shot examples sit beside the task as `<task>.fewshot.jsonl`, in the same format. The task's name
is its file name without `.jsonl`. A task is identified by the sha256 of its bytes, so that a run's report says
exactly which items its model was scored on and its data was cleaned against.

The bundled suite lies in crawlproc/data/evalsuite/ (its SOURCES.md says where each item came from).

Scoring conventions (trainer/evaluate.py; the same as lm-eval-harness's for the same strings):
- `acc`: the choice with the highest summed log-likelihood is the gold one;
- `acc_norm`: the same with each log-likelihood divided by the choice's length in characters, not counting
  one leading space (the separator lm-eval's tasks put between a context and its answer, and leave out of
  that length); `norm_length` is that length;
- a one-choice task: `acc` is 1 when the greedy continuation is the choice, and its perplexity is reported.
`lm_eval_yaml` writes the lm-eval task that scores exactly the same strings with the same conventions.

Reference text sets, for bits per byte, are JSONL files of documents, one a line: {"id": ..., "text": ...}.
The bundled ones lie in crawlproc/data/evalsuite/reference/ (clean text with a licence, kept apart from any
crawl; their SOURCES.md says where they came from).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

SUITE_DIR = Path(__file__).parent / "data" / "evalsuite"
REFERENCE_DIR = SUITE_DIR / "reference"
FEWSHOT_SUFFIX = ".fewshot.jsonl"
MAX_TASK_BYTES = 256 << 20


class EvalSuiteError(ValueError):
    """A task file that cannot be read as benchmark items: names the file, the line and the reason."""


@dataclass(frozen=True)
class Item:
    id: str
    context: str
    choices: tuple[str, ...]
    gold: int

    @property
    def answer(self) -> str:
        return self.choices[self.gold]


@dataclass
class Task:
    name: str
    path: str
    sha256: str
    items: list[Item]
    fewshot: list[Item] = field(default_factory=list)

    @property
    def greedy(self) -> bool:
        """One choice per item: scored by the greedy continuation, not by a choice among several."""
        return all(len(it.choices) == 1 for it in self.items)


def task_name(path: str | Path) -> str:
    name = Path(path).name
    return name[: -len(".jsonl")] if name.endswith(".jsonl") else Path(path).stem


def _parse_items(data: bytes, where: str) -> list[Item]:
    items: list[Item] = []
    seen: set[str] = set()
    for no, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        at = f"{where}:{no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvalSuiteError(f"{at}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise EvalSuiteError(f"{at}: an item is a JSON object")
        item_id, context, choices, gold = (row.get(k) for k in ("id", "context", "choices", "gold"))
        if not isinstance(item_id, str) or not item_id:
            raise EvalSuiteError(f"{at}: 'id' must be a non-empty string")
        if item_id in seen:
            raise EvalSuiteError(f"{at}: id {item_id!r} appears twice")
        if not isinstance(context, str):
            raise EvalSuiteError(f"{at}: 'context' must be a string")
        if (not isinstance(choices, list) or not choices
                or not all(isinstance(c, str) and c for c in choices)):
            raise EvalSuiteError(f"{at}: 'choices' must be a non-empty list of non-empty strings")
        if isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < len(choices):
            raise EvalSuiteError(f"{at}: 'gold' must be an index into 'choices' (0..{len(choices) - 1})")
        seen.add(item_id)
        items.append(Item(item_id, context, tuple(choices), gold))
    return items


def load_task(path: str | Path, read=None) -> Task:
    """One task file (and its few-shot file, when present). `read(path) -> bytes` reads from any storage;
    the default reads a local file."""
    read = read or (lambda p: Path(p).read_bytes())
    path = str(path)
    try:
        data = read(path)
    except FileNotFoundError:
        raise EvalSuiteError(f"{path}: no such task file") from None
    if len(data) > MAX_TASK_BYTES:
        raise EvalSuiteError(f"{path}: over {MAX_TASK_BYTES >> 20} MiB; split it into several tasks")
    items = _parse_items(data, path)
    if not items:
        raise EvalSuiteError(f"{path}: holds no items")
    digest = hashlib.sha256(data)
    fewshot: list[Item] = []
    shot_path = path[: -len(".jsonl")] + FEWSHOT_SUFFIX if path.endswith(".jsonl") else None
    if shot_path:
        try:
            shot_data = read(shot_path)
        except FileNotFoundError:
            shot_data = None
        if shot_data is not None:
            fewshot = _parse_items(shot_data, shot_path)
            digest.update(b"\0fewshot\0" + shot_data)
    return Task(task_name(path), path, digest.hexdigest(), items, fewshot)


def default_suite() -> list[Path]:
    """The bundled tasks, by name."""
    return sorted(p for p in SUITE_DIR.glob("*.jsonl") if not p.name.endswith(FEWSHOT_SUFFIX))


def default_references() -> list[Path]:
    """The bundled reference text sets (bits per byte), by name."""
    return sorted(REFERENCE_DIR.glob("*.jsonl"))


def norm_length(choice: str) -> int:
    """The length `acc_norm` divides a choice's log-likelihood by: its characters, less one leading space."""
    return max(1, len(choice) - 1 if choice.startswith(" ") else len(choice))


def resolve_paths(specs: list[str] | tuple[str, ...], kind: str = "task") -> list[str]:
    """Task (or reference set) files from what a user wrote: `suite` (every bundled one), a bundled name
    (`hellaswag`), or a path / URI of a .jsonl file. An unknown name is an error naming the bundled ones."""
    bundled = {task_name(p): p for p in (default_suite() if kind == "task" else default_references())}
    out: list[str] = []
    for spec in specs:
        spec = str(spec).strip()
        if not spec or spec == "none":
            continue
        if spec in ("suite", "default"):
            out.extend(str(p) for p in bundled.values())
        elif spec in bundled:
            out.append(str(bundled[spec]))
        elif spec.endswith(".jsonl") or "/" in spec or "://" in spec:
            out.append(spec)
        else:
            names = ", ".join(sorted(bundled)) or "(none bundled)"
            raise EvalSuiteError(f"unknown {kind} {spec!r}: name a bundled one ({names}), `suite`, or a .jsonl file")
    seen: set[str] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


# --- reference text sets (bits per byte) -------------------------------------------------------------------


@dataclass
class Reference:
    name: str
    path: str
    sha256: str
    docs: list[tuple[str, str]]  # (id, text)

    @property
    def n_bytes(self) -> int:
        return sum(len(t.encode("utf-8")) for _, t in self.docs)


def load_reference(path: str | Path, read=None) -> Reference:
    """One reference set: JSONL of {"id", "text"} documents. `read(path) -> bytes` as for load_task."""
    read = read or (lambda p: Path(p).read_bytes())
    path = str(path)
    try:
        data = read(path)
    except FileNotFoundError:
        raise EvalSuiteError(f"{path}: no such reference file") from None
    if len(data) > MAX_TASK_BYTES:
        raise EvalSuiteError(f"{path}: over {MAX_TASK_BYTES >> 20} MiB; split it into several sets")
    docs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for no, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        at = f"{path}:{no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvalSuiteError(f"{at}: not JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row["id"]:
            raise EvalSuiteError(f"{at}: a document is an object with a non-empty string 'id'")
        if not isinstance(row.get("text"), str) or not row["text"]:
            raise EvalSuiteError(f"{at}: 'text' must be a non-empty string")
        if row["id"] in seen:
            raise EvalSuiteError(f"{at}: id {row['id']!r} appears twice")
        seen.add(row["id"])
        docs.append((row["id"], row["text"]))
    if not docs:
        raise EvalSuiteError(f"{path}: holds no documents")
    return Reference(task_name(path), path, hashlib.sha256(data).hexdigest(), docs)


# --- the matching lm-eval-harness task ---------------------------------------------------------------------


def _yaml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def lm_eval_yaml(task: Task, data_file: str, fewshot_file: str | None = None, name: str | None = None) -> str:
    """The lm-eval-harness (0.4) task YAML that scores the same (context, continuation) strings as
    trainer/evaluate.py with the same acc / acc_norm, reading `data_file` (this task's JSONL) through the
    `json` dataset builder, offline. Few-shot examples come from `fewshot_file` in file order (first_n)."""
    name = name or f"crawlproc_{task.name}"
    files = {"test": data_file, **({"train": fewshot_file} if fewshot_file else {})}
    lines = [
        f"# crawlproc task {task.name} (sha256 {task.sha256}): the strings and metrics of `crawlproc eval`",
        f"task: {name}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        *[f"    {split}: {_yaml_str(path)}" for split, path in files.items()],
        "test_split: test",
    ]
    if fewshot_file:
        lines += ["fewshot_split: train", "fewshot_config:", "  sampler: first_n"]
    lines += ["doc_to_text: context"]
    if task.greedy:
        lines += [
            "output_type: loglikelihood",
            "doc_to_target: \"{{ choices[0] }}\"",
            "target_delimiter: \"\"",  # few-shot examples: context + answer, as written
            "fewshot_delimiter: \"\\n\\n\"",
            "metric_list:",
            "  - {metric: perplexity, aggregation: perplexity, higher_is_better: false}",
            "  - {metric: acc, aggregation: mean, higher_is_better: true}",
        ]
    else:
        spaced = all(c.startswith(" ") for it in task.items + task.fewshot for c in it.choices)
        # lm-eval scores context + target_delimiter + choice and divides by len(choice) for acc_norm: with
        # every choice starting with its space, strip that space and let the delimiter put it back (the stock
        # tasks' convention, and our norm_length); otherwise score the choices as written
        choice = "\"{{ choices | map('regex_replace', '^ ', '') | list }}\"" if spaced else "choices"
        lines += [
            "output_type: multiple_choice",
            f"doc_to_choice: {choice}",
            "doc_to_target: gold",
            f"target_delimiter: {_yaml_str(' ' if spaced else '')}",
            "fewshot_delimiter: \"\\n\\n\"",
            "metric_list:",
            "  - {metric: acc, aggregation: mean, higher_is_better: true}",
            "  - {metric: acc_norm, aggregation: mean, higher_is_better: true}",
        ]
    lines += ["metadata:", "  version: 1.0", ""]
    return "\n".join(lines)


def lm_eval_reference_yaml(ref: Reference, data_file: str, name: str | None = None) -> str:
    """The lm-eval-harness task that computes the same bits per byte of a reference set (its
    loglikelihood_rolling over each document's text, bytes counted in UTF-8)."""
    return "\n".join([
        f"# crawlproc reference set {ref.name} (sha256 {ref.sha256}): bits per byte as `crawlproc eval`",
        f"task: {name or f'crawlproc_{ref.name}'}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    test: {_yaml_str(data_file)}",
        "test_split: test",
        "output_type: loglikelihood_rolling",
        "doc_to_text: \"\"",
        "doc_to_target: text",
        "metric_list:",
        "  - {metric: bits_per_byte, aggregation: bits_per_byte, higher_is_better: false}",
        "metadata:",
        "  version: 1.0",
        "",
    ])


def write_lm_eval_tasks(task_paths: list[str], ref_paths: list[str], out_dir: str | Path, read=None) -> list[str]:
    """One lm-eval task YAML per task and reference file under out_dir (names crawlproc_<name>), pointing at
    the files by absolute path; returns the task names (pass out_dir as lm-eval's --include_path)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for path in task_paths:
        task = load_task(path, read)
        shots = path[: -len(".jsonl")] + FEWSHOT_SUFFIX if path.endswith(".jsonl") else None
        shots = str(Path(shots).resolve()) if shots and task.fewshot else None
        name = f"crawlproc_{task.name}"
        (out_dir / f"{name}.yaml").write_text(lm_eval_yaml(task, str(Path(path).resolve()), shots, name))
        names.append(name)
    for path in ref_paths:
        ref = load_reference(path, read)
        name = f"crawlproc_{ref.name}"
        (out_dir / f"{name}.yaml").write_text(lm_eval_reference_yaml(ref, str(Path(path).resolve()), name))
        names.append(name)
    return names
