"""Decontamination on real text: real benchmark items (tests/data/evalsuite) planted, verbatim and lightly
edited, into real pages (tests/data/html: the 181 ScrapingHub articles; the tokenizer corpus' sentences in
27 languages). Every planted item is found and named; the real pages without a planted item are all kept.
Also what the index holds (crawlproc/decontam/index.py) and the file function (crawlproc/decontam/apply.py)."""

from __future__ import annotations

import json
import random
import re

import pyarrow as pa
import pytest

from crawlproc.decontam import match, text
from crawlproc.decontam.apply import cut_spans
from crawlproc.decontam.index import build_index
from crawlproc.evalsuite import Item, Task, load_task

TASKS = ("arc_challenge", "arc_easy", "hellaswag", "lambada_openai", "openbookqa", "piqa")
N = 13


@pytest.fixture(scope="module")
def tasks(data_dir) -> list[Task]:
    return [load_task(data_dir / "evalsuite" / f"{name}.jsonl") for name in TASKS]


@pytest.fixture(scope="module")
def index(tasks):
    return build_index(tasks)


@pytest.fixture(scope="module")
def pages(data_dir) -> list[str]:
    gold = json.loads((data_dir / "html" / "ground-truth.json").read_text(encoding="utf-8"))
    return [v["articleBody"] for _, v in sorted(gold.items())]


@pytest.fixture(scope="module")
def sentences(data_dir) -> list[str]:
    lines = (data_dir / "tokenizer" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]


def question(item: Item) -> str:
    """The item as a page would show it: without the evaluation's prompt words."""
    return re.sub(r"^Question: |\nAnswer:$", "", item.context)


def plant(page: str, snippet: str, rng: random.Random) -> str:
    """`snippet` as a paragraph of its own at a random paragraph break of a real page."""
    paragraphs = page.split("\n")
    at = rng.randrange(len(paragraphs) + 1)
    return "\n".join(paragraphs[:at] + [snippet] + paragraphs[at:])


def found_items(index, docs: list[str]) -> dict[int, set[str]]:
    """Row -> the ids of the items each contaminated document matched."""
    return {c.row: {index.benchmarks[t].ids[i] for t, i in c.items}
            for c in match.find(index, docs) if c.contaminated(1)}


# --- edits a copy of an item may have on the web ----------------------------------------------------------

def verbatim(item: Item, rng) -> str:
    return question(item) + item.answer


def upper(item: Item, rng) -> str:
    return (question(item) + item.answer).upper()


def repunctuated(item: Item, rng) -> str:
    """Punctuation removed, changed and added."""
    s = question(item) + item.answer
    s = s.replace(",", "").replace(".", ";").replace("?", " ?!").replace("'", "\u2019")
    return "\u201c" + s + "\u201d"


def rewhitespaced(item: Item, rng) -> str:
    words = (question(item) + item.answer).split()
    return "".join(w + rng.choice([" ", "  ", "\n", "\t", " \n "]) for w in words)


def one_word_changed(item: Item, rng) -> tuple[str, int]:
    """A word near the middle replaced; also how many words stay intact on the longer side of it."""
    words = (question(item) + item.answer).split()
    k = len(words) // 2 + rng.randrange(-1, 2) if len(words) > 3 else 0
    words[k] = "zebra"
    return " ".join(words), max(k, len(words) - k - 1)


EDITS = [verbatim, upper, repunctuated, rewhitespaced]


def test_planted_items_are_found_and_named_verbatim_and_lightly_edited(index, tasks, pages):
    """Every task, 12 items each, four edits: each planted copy is found, and its item is among those named.
    An item too short to index (fewer than min_item_words = 8 words) is left out of the plan."""
    rng = random.Random(7)
    docs, expected = [], {}
    for task in tasks:
        long_enough = [it for it in task.items if len(text.words(question(it) + it.answer)) >= 8]
        for item in rng.sample(long_enough, 12):
            for edit in EDITS:
                expected[len(docs)] = (task.name, item.id, edit.__name__)
                docs.append(plant(rng.choice(pages), edit(item, rng), rng))
    found = found_items(index, docs)
    missed = [expected[r] for r in expected if expected[r][1] not in found.get(r, set())]
    assert not missed, missed
    assert len(expected) == len(TASKS) * 12 * len(EDITS)


def test_a_changed_word_is_found_wherever_13_words_stay_intact_and_mostly_below(index, tasks, pages):
    """One word changed near the middle. Where 13 words in a row stay intact a 13-gram is left: always
    found. Shorter items (at most 26 words) rely on the coverage rule (half of the item's own 5-grams): most
    are found; the ones that are not are those whose 5-grams other items share."""
    rng = random.Random(11)
    docs, kept_13, short = [], {}, {}
    for task in tasks:
        for item in rng.sample(task.items, 25):
            copy, intact = one_word_changed(item, rng)
            words = len(text.words(question(item) + item.answer))
            if words < 14:
                continue  # a changed word leaves no 6 words in a row of such an item: nothing to find
            (kept_13 if intact >= N + 1 else short)[len(docs)] = item.id  # +1: "zebra" may split into none
            docs.append(plant(rng.choice(pages), copy, rng))
    found = found_items(index, docs)
    assert all(kept_13[r] in found.get(r, set()) for r in kept_13), [kept_13[r] for r in kept_13
                                                                      if kept_13[r] not in found.get(r, set())]
    recall_short = sum(short[r] in found.get(r, set()) for r in short) / len(short)
    print(f"\nchanged word: {len(kept_13)} items keep a 13-gram (all found); {len(short)} do not, "
          f"{recall_short:.0%} found by the coverage rule")
    assert len(short) >= 30 and recall_short >= 0.8
    without = build_index(tasks, coverage_n=0)  # the rule is what finds them: without it, few are
    found_without = found_items(without, docs)
    assert sum(short[r] in found_without.get(r, set()) for r in short) < recall_short * len(short) / 2


def test_a_question_copied_without_its_answer_is_found(index, tasks, pages):
    rng = random.Random(3)
    docs, expected = [], {}
    for task in tasks:
        if task.greedy:  # LAMBADA: the context is the passage, found by its 13-grams anyway
            continue
        for item in rng.sample(task.items, 15):
            q = question(item)
            if len(text.words(q)) < 8:
                continue
            choices = "\n".join(f"({'ABCDE'[i]}) {c.strip()}" for i, c in enumerate(item.choices))
            expected[len(docs)] = item.id
            docs.append(plant(rng.choice(pages), q + "\n" + choices, rng))
    found = found_items(index, docs)
    assert len(expected) >= 40
    assert all(expected[r] in found.get(r, set()) for r in expected)


def test_real_pages_without_items_are_kept(index, pages, sentences):
    """No false positive on 181 real articles and 81 real sentences in 27 languages, with the full rules."""
    docs = pages + sentences
    hits = [c for c in match.find(index, docs)]
    assert [(c.row, c.benchmark(index), c.ngram) for c in hits] == []


def test_wrong_choices_and_few_shot_items_are_not_indexed(index, tasks, pages):
    """Only the context and the gold answer are: a page holding the wrong endings of HellaSwag items is kept;
    so is one holding the few-shot examples (train-split items, not in the task files)."""
    hellaswag = next(t for t in tasks if t.name == "hellaswag")
    rng = random.Random(5)
    docs = []
    for item in rng.sample(hellaswag.items, 20):
        wrong = " ".join(c for i, c in enumerate(item.choices) if i != item.gold)
        docs.append(plant(rng.choice(pages), wrong, rng))
    for task in tasks:
        for shot in task.fewshot:
            docs.append(plant(rng.choice(pages), question(shot) + shot.answer, rng))
    assert found_items(index, docs) == {}


def test_an_unseen_benchmark_file_is_found_once_added(tasks, pages, data_dir):
    """The few-shot files stand in for a benchmark the index was not built with."""
    extra = load_task(data_dir / "evalsuite" / "hellaswag.fewshot.jsonl")
    extra.name = "heldout"
    extra.items = extra.fewshot or extra.items
    rng = random.Random(9)
    docs = [plant(rng.choice(pages), upper(item, rng), rng) for item in extra.items]
    assert found_items(build_index(tasks), docs) == {}
    with_it = build_index([*tasks, extra])
    found = found_items(with_it, docs)
    assert all(item.id in found.get(r, set()) for r, item in enumerate(extra.items))


def test_prompt_words_are_left_out_only_where_every_context_has_them(index):
    by = {b.name: b for b in index.benchmarks}
    assert (by["arc_easy"].prompt_prefix, by["arc_easy"].prompt_suffix) == ("question", "answer")
    assert (by["piqa"].prompt_prefix, by["piqa"].prompt_suffix) == ("question", "answer")
    assert (by["hellaswag"].prompt_prefix, by["hellaswag"].prompt_suffix) == ("", "")
    assert (by["openbookqa"].prompt_prefix, by["openbookqa"].prompt_suffix) == ("", "")
    few = Task("few", "few.jsonl", "0" * 64, [Item(f"i{k}", f"Question: thing {k} here\nAnswer:", (" a",), 0)
                                                for k in range(5)])
    assert build_index([few]).benchmarks[0].prompt_prefix == ""  # 5 items say nothing about a template


def test_short_items_are_matched_whole_and_the_shortest_not_at_all(pages):
    items = [Item("nine", "What do bees collect from the flowers in spring", (" pollen",), 0),  # 9 + 1 words
             Item("six", "Which planet is the largest", (" Jupiter",), 0)]  # 5 + 1 words: below 8
    index = build_index([Task("t", "t.jsonl", "0" * 64, items)])
    assert index.benchmarks[0].indexed == 1
    docs = [pages[0] + "\nWhat do bees collect from the flowers in spring? Pollen.",
            pages[1] + "\nWhat do bees collect from flowers?",  # a part of the item only: not it
            pages[2] + "\nWhich planet is the largest? Jupiter."]
    assert found_items(index, docs) == {0: {"nine"}}


def test_every_indexed_key_passes_its_filter_and_is_found(index):
    import numpy as np

    from crawlproc.decontam import kernels

    if not kernels.AVAILABLE:
        pytest.skip("numba not available")
    keys = index.keys[:: max(1, len(index.keys) // 5000)]
    assert all(kernels._maybe(index.bloom, index.bloom_shift, k) for k in keys)
    assert [kernels._find(index.slots, index.slot_index, index.slot_shift, k) for k in keys] == \
        [int(np.searchsorted(index.keys, k)) for k in keys]


def test_cut_removes_the_matched_spans_and_what_trails_them_on_the_line():
    body = "Intro line.\nThe quick brown fox jumps over the lazy dog?! Then more.\nEnd."
    start = body.index("The quick").__index__()
    end = body.index("dog") + 3
    b = lambda i: len(body[:i].encode())  # noqa: E731
    assert cut_spans(body, [(b(start), b(end))]) == "Intro line.\nThen more.\nEnd."
    assert cut_spans("é x y", [(0, 2)]) == "x y"  # byte offsets of a two-byte character


def test_a_lone_surrogate_or_a_binary_column_does_not_stop_matching(index, tasks):
    item = tasks[0].items[0]
    docs = ["bad \ud800 text " + question(item) + item.answer, "plain"]
    assert set(found_items(index, docs)) == {0}
    column = pa.array([d.encode("utf-8", "surrogatepass") for d in docs], pa.binary())
    assert set(found_items(index, column)) == {0}
