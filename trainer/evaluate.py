"""Benchmark scores and bits per byte of a causal language model, computed the way lm-eval-harness does.

Multiple choice: each choice is scored by the log-likelihood of its tokens given the context; `acc` takes the
highest sum, `acc_norm` the highest sum per character of the choice (crawlproc/evalsuite.py norm_length). A
one-choice task (LAMBADA) scores whether the greedy continuation is the choice, and its perplexity. The
strings are split into tokens as lm-eval's HFLM splits them, so that the scores agree item by item on the
same model (tests/test_evaluate.py runs lm-eval itself on our hf/ export):

- trailing whitespace of the context moves to the continuation;
- the continuation's tokens are those of tokenize(context + continuation) after the tokens of
  tokenize(context); an empty context is the prefix token (end of text);
- a sequence longer than the model's window loses tokens on the left;
- log-softmax over the whole (padded) vocabulary, in float32.

Bits per byte: each reference document is cut into disjoint windows of the model's length (the first
predicted from the end-of-text token, each next one from its own first token on), and
bpb = -sum(log p) / ln 2 / sum(UTF-8 bytes): comparable between models whatever their tokenizers.

With data parallelism each rank scores a slice of the items and the documents, and the per-item results are
gathered, so every rank returns the whole result. Nothing here imports Ray.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from crawlproc.evalsuite import Reference, Task, norm_length


@dataclass
class LM:
    """What scoring needs from a model: its tokenizer, its window, and logits for a batch of token rows."""

    encode: Callable[[str], list[int]]
    logits: Callable[[torch.Tensor], torch.Tensor]  # (B, T) int64 -> (B, T, vocab)
    max_length: int
    prefix_id: int  # conditions the first token of an empty context and of a reference document
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # optional split of `logits` into hidden states (B, T, d) and the output head (N, d) -> (N, vocab), so
    # that the head (the largest matmul of a small model) runs only where a continuation token is scored
    hidden: Callable[[torch.Tensor], torch.Tensor] | None = None
    head: Callable[[torch.Tensor], torch.Tensor] | None = None

    def logits_at(self, idx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The logits of the positions `mask` selects, (N, vocab)."""
        if self.hidden is not None and self.head is not None:
            return self.head(self.hidden(idx)[mask])
        return self.logits(idx)[mask]


def lm_from_model(model: torch.nn.Module, encode: Callable[[str], list[int]], eot_id: int,
                  device: torch.device | str = "cpu", autocast=None) -> LM:
    """An LM over our GPT (trainer/model.py), e.g. the model being trained (a DDP or compiled wrapper is
    fine: the raw module is used)."""
    from trainer.checkpoint import unwrap

    raw = unwrap(model)

    def run(fn, x):
        if autocast is not None:
            with autocast:
                return fn(x)
        return fn(x)

    return LM(encode, lambda idx: run(lambda x: raw(x)[0], idx), raw.cfg.block_size, eot_id, torch.device(device),
              hidden=lambda idx: run(raw.hidden_states, idx), head=lambda h: run(raw.lm_head, h))


# --- requests -----------------------------------------------------------------------------------------------


@dataclass
class Request:
    ctx: list[int]
    cont: list[int]


def encode_pair(lm: LM, context: str, continuation: str) -> Request:
    """The (context, continuation) token lists lm-eval's HFLM scores for these two strings."""
    if context == "":
        cont = lm.encode(continuation)
        if not cont:
            raise ValueError("an empty continuation has nothing to score")
        return Request([lm.prefix_id], cont) if cont[0] != lm.prefix_id else Request(cont[:1], cont[1:])
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = lm.encode(context + continuation)
    ctx = lm.encode(context)
    return Request(ctx, whole[len(ctx):])


def fewshot_prefix(task: Task, k: int) -> str:
    """The first k few-shot examples, each context + its gold answer, separated by blank lines."""
    if k <= 0:
        return ""
    if k > len(task.fewshot):
        raise ValueError(f"task {task.name}: {k} few-shot examples asked, its few-shot file has "
                         f"{len(task.fewshot)}")
    return "".join(ex.context + ex.answer + "\n\n" for ex in task.fewshot[:k])


def rolling_windows(tokens: list[int], prefix_id: int, max_length: int) -> list[Request]:
    """Windows that predict every token once, each from at most max_length tokens (lm-eval's
    loglikelihood_rolling with context_len=1): the first from the prefix token, each next one from the token
    before it, and the last, shorter one from as many earlier tokens as fill the window."""
    out, done = [], 0
    while done < len(tokens):
        end = min(len(tokens), done + max_length)
        ctx = [prefix_id] if done == 0 else tokens[end - max_length - 1:done]
        out.append(Request(ctx, tokens[done:end]))
        done = end
    return out


# --- scoring ----------------------------------------------------------------------------------------------


@torch.no_grad()
def score_requests(lm: LM, requests: Sequence[Request], batch_size: int = 32) -> list[tuple[float, bool]]:
    """(sum of log p of the continuation's tokens, whether each of them is the argmax) per request. Rows are
    batched longest first, right-padded: padding after a row's end does not change a causal model's
    logits before it."""
    L = lm.max_length
    lls = [0.0] * len(requests)
    greedy = [True] * len(requests)
    rows = []
    for i, r in enumerate(requests):
        if not r.cont:
            raise ValueError("a request with an empty continuation")
        # a continuation longer than the window (lm-eval refuses it) is scored in pieces of at most L tokens,
        # each from the tokens before it, as a rolling window would
        for at in range(0, len(r.cont), L):
            piece = r.cont[at:at + L]
            inp = (r.ctx + r.cont[:at + len(piece)])[-(L + 1):][:-1]
            rows.append((i, inp, piece))
    rows.sort(key=lambda t: -len(t[1]))
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        width = len(batch[0][1])
        idx = torch.zeros((len(batch), width), dtype=torch.long)
        target = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.bool)
        for b, (_, inp, cont) in enumerate(batch):
            idx[b, :len(inp)] = torch.tensor(inp, dtype=torch.long)
            # the continuation is predicted at the last len(cont) positions of the input
            target[b, len(inp) - len(cont):len(inp)] = torch.tensor(cont, dtype=torch.long)
            mask[b, len(inp) - len(cont):len(inp)] = True
        idx, target, mask = idx.to(lm.device), target.to(lm.device), mask.to(lm.device)
        # log-softmax only where a continuation token is predicted: (tokens, vocab), not (rows, width, vocab)
        logp = F.log_softmax(lm.logits_at(idx, mask).float(), dim=-1)
        wanted = target[mask]
        token_ll = logp.gather(1, wanted[:, None])[:, 0]
        row = mask.nonzero()[:, 0]
        sums = torch.zeros(len(batch), dtype=torch.float64, device=logp.device).index_add_(0, row, token_ll.double())
        misses = torch.zeros(len(batch), dtype=torch.long, device=logp.device).index_add_(
            0, row, (logp.argmax(dim=-1) != wanted).long())
        for (i, _, _), ll, miss in zip(batch, sums.tolist(), misses.tolist()):
            lls[i] += ll
            greedy[i] = greedy[i] and miss == 0
    return list(zip(lls, greedy))


@dataclass
class PreparedTask:
    task: Task
    items: list  # the items scored (the first `limit`)
    requests: list[list[Request]]  # per item, one per choice


@dataclass
class PreparedReference:
    ref: Reference
    docs: list[tuple[str, str]]
    windows: list[list[Request]]  # per document
    n_bytes: list[int]


def prepare_task(lm: LM, task: Task, limit: int | None = None, fewshot: int = 0) -> PreparedTask:
    """Tokenize the first `limit` items once (the training loop scores the same requests at every eval)."""
    items = task.items[:limit] if limit else list(task.items)
    prefix = fewshot_prefix(task, fewshot)
    reqs = [[encode_pair(lm, prefix + it.context, c) for c in it.choices] for it in items]
    return PreparedTask(task, items, reqs)


def prepare_reference(lm: LM, ref: Reference, limit: int | None = None) -> PreparedReference:
    docs = ref.docs[:limit] if limit else list(ref.docs)
    windows = [rolling_windows(lm.encode(text), lm.prefix_id, lm.max_length) for _, text in docs]
    return PreparedReference(ref, docs, windows, [len(t.encode("utf-8")) for _, t in docs])


def _stderr(values: list[float]) -> float | None:
    n = len(values)
    if n < 2:
        return None
    mu = sum(values) / n
    return math.sqrt(sum((v - mu) ** 2 for v in values) / (n - 1)) / math.sqrt(n)


def _item_result(item, scored: list[tuple[float, bool]], greedy_task: bool) -> dict:
    lls = [ll for ll, _ in scored]
    if greedy_task:
        return {"id": item.id, "ll": lls[0], "acc": float(scored[0][1])}
    acc = max(range(len(lls)), key=lambda j: lls[j]) == item.gold
    normed = [ll / norm_length(c) for ll, c in zip(lls, item.choices)]
    acc_norm = max(range(len(normed)), key=lambda j: normed[j]) == item.gold
    return {"id": item.id, "lls": lls, "greedy": [g for _, g in scored], "acc": float(acc),
            "acc_norm": float(acc_norm)}


def task_summary(p: PreparedTask, items: list[dict]) -> dict:
    accs = [r["acc"] for r in items]
    out = {"task": p.task.name, "sha256": p.task.sha256, "n": len(items),
           "acc": sum(accs) / len(accs) if accs else None, "acc_stderr": _stderr(accs)}
    if p.task.greedy:
        lls = [r["ll"] for r in items]
        out["perplexity"] = math.exp(-sum(lls) / len(lls)) if lls else None
    else:
        norms = [r["acc_norm"] for r in items]
        out["acc_norm"] = sum(norms) / len(norms) if norms else None
        out["acc_norm_stderr"] = _stderr(norms)
    return out


class Gather:
    """How per-rank lists become one list: identity in one process, all_gather_object under DDP."""

    def __init__(self, rank: int = 0, world_size: int = 1):
        self.rank, self.world_size = rank, world_size

    def __call__(self, mine: list) -> list:
        if self.world_size == 1:
            return mine
        import torch.distributed as dist

        parts: list = [None] * self.world_size
        dist.all_gather_object(parts, mine)
        return [x for part in parts for x in part]


def score_tasks(lm: LM, prepared: list[PreparedTask], gather: Gather | None = None, batch_size: int = 32,
                keep_items: bool = False) -> list[dict]:
    """Each task's summary (and, with keep_items, its per-item results in file order). Under DDP each rank
    scores items rank, rank + world, ... and every rank gets the whole result."""
    gather = gather or Gather()
    out = []
    for p in prepared:
        started = time.perf_counter()
        mine = list(range(gather.rank, len(p.items), gather.world_size))
        flat = [r for i in mine for r in p.requests[i]]
        scored = score_requests(lm, flat, batch_size)
        results, at = [], 0
        for i in mine:
            n = len(p.requests[i])
            results.append((i, _item_result(p.items[i], scored[at:at + n], p.task.greedy)))
            at += n
        items = [r for _, r in sorted(gather(results), key=lambda t: t[0])]
        summary = task_summary(p, items)
        summary["seconds"] = round(time.perf_counter() - started, 3)
        if keep_items:
            summary["items"] = items
        out.append(summary)
    return out


def score_references(lm: LM, prepared: list[PreparedReference], gather: Gather | None = None,
                     batch_size: int = 32) -> list[dict]:
    """Bits per byte of each reference set; under DDP each rank scores a slice of the documents."""
    gather = gather or Gather()
    out = []
    for p in prepared:
        started = time.perf_counter()
        mine = list(range(gather.rank, len(p.docs), gather.world_size))
        flat = [w for i in mine for w in p.windows[i]]
        scored = score_requests(lm, flat, batch_size)
        per_doc, at = [], 0
        for i in mine:
            n = len(p.windows[i])
            per_doc.append((i, sum(ll for ll, _ in scored[at:at + n]), sum(len(w.cont) for w in p.windows[i])))
            at += n
        docs = sorted(gather(per_doc))
        ll = sum(d[1] for d in docs)
        n_bytes = sum(p.n_bytes[d[0]] for d in docs)
        n_tokens = sum(d[2] for d in docs)
        out.append({"reference": p.ref.name, "sha256": p.ref.sha256, "docs": len(docs), "bytes": n_bytes,
                    "tokens": n_tokens, "bits_per_byte": -ll / math.log(2) / n_bytes if n_bytes else None,
                    "seconds": round(time.perf_counter() - started, 3)})
    return out


@dataclass
class EvalSpec:
    """What to evaluate: task and reference files (paths or URIs, see crawlproc.evalsuite.resolve_paths),
    how many items of each (None: all), few-shot examples, batch size."""

    tasks: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    limit: int | None = None
    ref_limit: int | None = None
    fewshot: int = 0
    batch_size: int = 32


def storage_reader(storage) -> Callable[[str], bytes]:
    """read(path or URI) -> bytes for crawlproc.evalsuite's loaders: a missing object is FileNotFoundError on
    every back end (an optional few-shot file is looked for, not required)."""
    from crawlproc.store.storage import normalize

    def read(path: str) -> bytes:
        uri = normalize(path)
        try:
            return storage.read_bytes(uri)
        except FileNotFoundError:
            raise
        except OSError as e:
            if not storage.exists(uri):
                raise FileNotFoundError(uri) from e
            raise

    return read


class Evaluator:
    """Loads the spec's files once, tokenizes their requests once, and scores a model on them as often as
    asked (the training loop calls it at every eval)."""

    def __init__(self, spec: EvalSpec, lm: LM, read=None):
        from crawlproc.evalsuite import load_reference, load_task

        self.spec, self.lm = spec, lm
        self.tasks = [prepare_task(lm, load_task(p, read), spec.limit, spec.fewshot) for p in spec.tasks]
        self.refs = [prepare_reference(lm, load_reference(p, read), spec.ref_limit) for p in spec.references]

    def run(self, gather: Gather | None = None, keep_items: bool = False, lm: LM | None = None) -> dict:
        lm = lm or self.lm
        return {"tasks": score_tasks(lm, self.tasks, gather, self.spec.batch_size, keep_items),
                "references": score_references(lm, self.refs, gather, self.spec.batch_size),
                "limit": self.spec.limit, "ref_limit": self.spec.ref_limit, "fewshot": self.spec.fewshot}


def flat_metrics(result: dict) -> dict[str, float]:
    """{"hellaswag/acc_norm": 0.31, "wikitext/bpb": 1.9, ...}: one number per metric, for tables."""
    out: dict[str, float] = {}
    for t in result.get("tasks", []):
        for k in ("acc", "acc_norm", "perplexity"):
            if t.get(k) is not None:
                out[f"{t['task']}/{k}"] = t[k]
    for r in result.get("references", []):
        if r.get("bits_per_byte") is not None:
            out[f"{r['reference']}/bpb"] = r["bits_per_byte"]
    return out
