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
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

SUITE_DIR = Path(__file__).parent / "data" / "evalsuite"
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
