"""A transformers classifier, FineWeb-Edu-style: any local sequence-classification model and its tokenizer.

A regression head (one output, as FineWeb-Edu's classifier) scores with its output; a classification head
scores with the softmax probability of `label`. The hub is never called: the model is a folder saved with
`save_pretrained` (local, or an object-store URI copied once per machine), loaded with local_files_only and
HF_HUB_OFFLINE=1.

`TransformersScorer` holds the model (one per Ray actor in the classify stage): it sorts the texts it gets
by length and runs them in batches, so a batch pads to nearly its own length; every text is truncated to the
model's window (and, before tokenizing, to MAX_CHARS_PER_TOKEN characters per window token, so a huge
document costs no more to tokenize than a window's worth).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crawlproc.classify.base import Classifier, has_text
from crawlproc.classify.config import ClassifierConfig
from crawlproc.config import at_least, one_of, require
from crawlproc.classify.models import model_hash, local_model

DTYPES = ("float32", "bfloat16", "float16")
MAX_CHARS_PER_TOKEN = 100  # no tokenizer's token covers more text than this in practice
# BERT-base at 512 tokens, one core, length-sorted (bench_classify.py --batch-sweep): batch 1 ~ 4 > 16 > 64
# (1.32-1.46, 1.32-1.35, 1.04-1.08, 0.87 docs/CPU-s): on a CPU a larger batch only adds padding and cache misses
CPU_BATCH = 4
GPU_MAX_BATCH = 1024
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


@dataclass
class TransformersConfig(ClassifierConfig):
    kind: str = "transformers"
    tokenizer: str = ""  # "" = the model's folder
    max_length: int = 0  # tokens per document at most; 0 = the model's window
    batch_size: int = 0  # 0 = chosen by each actor: 4 on a CPU, the largest that fits (<= 1024) on a GPU
    actors: int = 0  # 0 = one per GPU of the cluster, else one per two CPUs (at least one)
    num_gpus: float | None = None  # per actor; None = 1 when the cluster has GPUs, else 0
    num_cpus: float = 1.0  # per actor (its torch threads)
    dtype: str = "float32"

    def check_kind(self):
        require(self.kind == "transformers", "kind", "must be 'transformers'")
        at_least(self, 0, "max_length", "batch_size", "actors", "num_gpus")  # 0: chosen (see above)
        require(self.num_cpus > 0, "num_cpus", "must be > 0")
        one_of(self, "dtype", DTYPES)


def offline() -> None:
    """Never reach the hub, whatever a loader would otherwise try; no progress bars in workers' logs."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def model_window(config, tokenizer) -> int:
    """The longest input the model takes: the tokenizer's limit when it has a real one, else the model's
    position embeddings."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    return int(getattr(config, "max_position_embeddings", 512) or 512)


class TransformersScorer:
    """The model on one device: `score(texts)` gives one float per text (none may be empty)."""

    def __init__(self, model_dir: str, tokenizer_dir: str, label_id: int | None, max_length: int,
                 batch_size: int = 0, device: str = "cpu", dtype: str = "float32", threads: int = 1):
        offline()
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if device == "cpu":
            torch.set_num_threads(max(1, int(threads)))
        self.torch = torch
        self.device = device
        self.label_id = label_id
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, local_files_only=True, dtype=getattr(torch, dtype)).to(device).eval()
        self.batch_size = batch_size or (CPU_BATCH if device == "cpu" else self._largest_batch())

    def info(self) -> dict:
        return {"device": self.device, "batch_size": self.batch_size, "max_length": self.max_length}

    def _forward(self, enc) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            logits = self.model(**{k: v.to(self.device) for k, v in enc.items()}).logits.float()
            if self.label_id is None:
                out = logits[:, 0]
            else:
                out = torch.softmax(logits, dim=-1)[:, self.label_id]
        return out.cpu().numpy().astype(np.float64)

    def _largest_batch(self) -> int:
        """The largest power of two (<= GPU_MAX_BATCH) whose full-window batch (the worst case) runs here."""
        torch = self.torch
        ok, size = 0, 8
        while size <= GPU_MAX_BATCH:
            ids = torch.full((size, self.max_length), self.tokenizer.pad_token_id or 0, dtype=torch.long)
            try:
                self._forward({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
            except torch.OutOfMemoryError:
                break
            finally:
                torch.cuda.empty_cache()
            ok, size = size, size * 2
        if ok == 0:
            raise RuntimeError(f"not even a batch of 8 x {self.max_length} tokens fits on {self.device}")
        return ok

    def score(self, texts: list[str]) -> list[float]:
        cap = self.max_length * MAX_CHARS_PER_TOKEN
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty(len(texts), dtype=np.float64)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            enc = self.tokenizer([texts[i][:cap] for i in idx], truncation=True, max_length=self.max_length,
                                 padding=True, return_tensors="pt")
            out[idx] = self._forward(enc)
        return out.tolist()


_scorers: dict[str, TransformersScorer] = {}
_lock = threading.Lock()


class TransformersClassifier(Classifier):
    kind = "transformers"
    Config = TransformersConfig
    remote = True

    def _dirs(self) -> tuple[Path, Path]:
        model = local_model(self.cfg.model, self.storage, self.cache)
        tok = local_model(self.cfg.tokenizer, self.storage, self.cache) if self.cfg.tokenizer else model
        return model, tok

    def prepare(self) -> dict:
        offline()
        from transformers import AutoConfig, AutoTokenizer

        try:
            model_dir, tok_dir = self._dirs()
        except (FileNotFoundError, OSError) as e:
            hint = (" (a model on the hub must be downloaded once, e.g. `huggingface-cli download NAME "
                    "--local-dir DIR`, and given as that folder: nothing is downloaded at run time)"
                    if "/" in self.cfg.model and not os.path.isabs(self.cfg.model) else "")
            raise self.error("model", f"cannot read the model: {e}{hint}") from None
        if not (model_dir / "config.json").is_file():
            raise self.error("model", f"{self.cfg.model!r} is not a transformers model folder (no config.json)")
        if not any((model_dir / w).is_file() for w in WEIGHT_FILES):
            raise self.error("model", f"{self.cfg.model!r} has no weights ({' or '.join(WEIGHT_FILES[::2])})")
        try:
            config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
        except (OSError, ValueError, KeyError) as e:
            raise self.error("model", f"cannot read {model_dir / 'config.json'}: {e}") from None
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as e:
            field = "tokenizer" if self.cfg.tokenizer else "model"
            raise self.error(field, f"cannot load a tokenizer from {tok_dir}: {e}") from None
        label_id = self._label_id(config)
        window = model_window(config, tokenizer)
        max_length = min(self.cfg.max_length or window, window)
        self.identity = {"model_hash": model_hash(model_dir),
                         "tokenizer_hash": model_hash(tok_dir) if self.cfg.tokenizer else None,
                         "label_id": label_id, "max_length": max_length, "dtype": self.cfg.dtype}
        return self.identity

    def _label_id(self, config) -> int | None:
        n = int(getattr(config, "num_labels", 1))
        labels = {str(v): int(k) for k, v in (getattr(config, "id2label", None) or {}).items()}
        if n == 1:
            if self.cfg.label and self.cfg.label not in labels:
                raise self.error("label", f"the model has a regression head (one output): leave label empty, "
                                 f"got {self.cfg.label!r}")
            return None
        if not self.cfg.label:
            raise self.error("label", f"the model has {n} labels: name the one to score "
                             f"({', '.join(sorted(labels, key=labels.get))})")
        if self.cfg.label not in labels:
            raise self.error("label", f"the model has no label {self.cfg.label!r} (it has: "
                             f"{', '.join(sorted(labels, key=labels.get))})")
        return labels[self.cfg.label]

    def scorer(self, device: str = "cpu") -> TransformersScorer:
        """The model loaded on `device` in this process; a Ray actor calls this on its own host, which copies
        a remote model into its own cache."""
        if self.identity is None:
            self.prepare()
        model_dir, tok_dir = self._dirs()
        found = model_hash(model_dir)
        if found != self.identity["model_hash"]:
            raise RuntimeError(f"model {self.cfg.model} changed since the stage started (content {found}, "
                               f"expected {self.identity['model_hash']}): run the stage again")
        return TransformersScorer(str(model_dir), str(tok_dir), self.identity["label_id"],
                                  self.identity["max_length"], self.cfg.batch_size, device, self.cfg.dtype,
                                  max(1, int(self.cfg.num_cpus)))

    def score(self, texts: list[str]) -> np.ndarray:
        """Scores computed in this process (explain, tests); the stage uses actors instead."""
        with _lock:
            key = self.score_fingerprint
            if key not in _scorers:
                _scorers[key] = self.scorer()
        return score_with(texts, _scorers[key].score)


def score_with(texts: list[str], score_batch) -> np.ndarray:
    """NaN for the texts with nothing in them, `score_batch(list of the others)` for the rest."""
    out = np.full(len(texts), np.nan)
    idx = [i for i, t in enumerate(texts) if has_text(t)]
    if idx:
        out[idx] = score_batch([texts[i] for i in idx])
    return out
