"""Checkpoints that load without unpickling arbitrary objects.

A checkpoint holds only tensors, numbers, strings, lists and dicts: the model and optimizer state dicts, the
step, the loader position (three ints and the seed), the RNG states (byte tensors) and the run config as a
JSON string. It is read back with torch.load(weights_only=True), which refuses anything else.
ckpt/latest.json names the newest complete file; files are written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import torch


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and torch.compile wrappers (their state-dict keys carry prefixes)."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    ckpt_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader_state: dict,
    config: dict,
    keep: int = 2,
) -> Path:
    """Write ckpt/step-NNNNNNNN.pt, point latest.json at it, and delete all but the `keep` newest."""
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "step": int(step),
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "loader": {k: int(v) for k, v in loader_state.items()},
        "rng": rng_state(),
        "config": json.dumps(config),
    }
    path = ckpt_dir / f"step-{step:08d}.pt"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    latest = ckpt_dir / "latest.json"
    tmp = latest.with_name(f".latest.json.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"step": int(step), "file": path.name}))
    os.replace(tmp, latest)
    for old in sorted(ckpt_dir.glob("step-*.pt"))[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


class CheckpointError(ValueError, pickle.UnpicklingError):
    """A checkpoint (or ckpt/latest.json) that cannot be used; the message names the file and why. Also an
    UnpicklingError, which is what torch raises when weights_only=True refuses a file."""


_CHECKPOINT_NAME = re.compile(r"^step-[0-9]{1,12}\.pt$")
_KEYS = ("step", "model", "optimizer", "loader", "rng", "config")


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The file ckpt/latest.json names: a step-NNNNNNNN.pt beside it, nothing else (no path, no '..')."""
    latest = Path(ckpt_dir) / "latest.json"
    if not latest.is_file():
        return None
    try:
        name = json.loads(latest.read_text())["file"]
    except (ValueError, KeyError, TypeError) as e:  # JSON and UTF-8 errors are ValueErrors
        raise CheckpointError(f"{latest} is not a checkpoint pointer ({type(e).__name__}: {e})") from None
    if not isinstance(name, str) or not _CHECKPOINT_NAME.match(name):
        raise CheckpointError(f"{latest} names {name!r:.200}: expected a step-NNNNNNNN.pt file in {ckpt_dir}")
    path = Path(ckpt_dir) / name
    if not path.is_file():
        raise FileNotFoundError(f"{latest} names {path.name}, which does not exist")
    return path


def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint's plain contents (config decoded from JSON); tensors land on the CPU. Raises
    CheckpointError, naming the file, for a truncated, foreign or malformed file."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refused it, or it is not a torch file at all
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: refused, not a plain-data torch checkpoint ({first[:300]})") from None
    except (RuntimeError, EOFError, ValueError, OSError) as e:  # truncated zip, short read, ...
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt "
                              f"({type(e).__name__}: {str(e).strip()[:300]})") from None
    if not isinstance(payload, dict) or not all(k in payload for k in _KEYS):
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: not a crawlproc checkpoint (expected keys {list(_KEYS)}, got {keys})")
    try:
        payload["config"] = json.loads(payload["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its config is not JSON ({e})") from None
    return payload

