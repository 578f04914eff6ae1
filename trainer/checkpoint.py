"""Checkpoints that load without unpickling arbitrary objects, in a run folder on a local disk or in a bucket.

A checkpoint holds only tensors, numbers, strings, lists and dicts: the model and optimizer state dicts, the
step, the loader position (three ints and the seed), the RNG states of every rank (byte tensors) and the run
config as a JSON string. It is read back with torch.load(weights_only=True), which refuses anything else.

ckpt/latest.json names the newest complete file and is written after it: it is the commit point. Locally a
checkpoint is written to a temporary name and renamed; on an object store it is written to a local temporary
file by torch.save and streamed up (a multipart upload), then latest.json follows. So a node preempted at any
moment leaves either the previous latest.json or the new one, each naming a whole file, and its replacement
(a fresh machine with nothing on its disk) resumes from the bucket.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import torch

from crawlproc.store.storage import (
    Storage, basename, copy_to_local, default_storage, join, normalize, private_tmpdir,
)



def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and torch.compile wrappers (their state-dict keys carry prefixes)."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def rng_state(device: torch.device | str | None = None) -> dict:
    """This process's RNG state: the CPU generator and, on CUDA, its own device's generator (each rank
    owns one device, so a rank saves exactly the stream its dropout draws from)."""
    state = {"torch": torch.get_rng_state()}
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device | str | None = None) -> None:
    torch.set_rng_state(state["torch"])
    device = torch.device(device) if device is not None else None
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def rank_rng_states(ckpt_rng) -> list[dict]:
    """The per-rank RNG states of a checkpoint (a list, one per rank; older checkpoints held one dict)."""
    return ckpt_rng if isinstance(ckpt_rng, list) else [ckpt_rng]


def save_checkpoint(
    ckpt_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader_state: dict,
    config: dict,
    keep: int = 2,
    rng: list[dict] | None = None,
    storage: Storage | None = None,
) -> str:
    """Write ckpt/step-NNNNNNNN.pt, point latest.json at it, and delete all but the `keep` newest.
    `rng`: every rank's RNG state, in rank order (default: this process's only)."""
    storage = storage or default_storage()
    ckpt_dir = normalize(str(ckpt_dir))
    payload = {
        "step": int(step),
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "loader": {k: int(v) for k, v in loader_state.items()},
        "rng": rng if rng is not None else [rng_state()],
        "config": json.dumps(config),
    }
    name = f"step-{step:08d}.pt"
    uri = join(ckpt_dir, name)
    if storage.local_path(uri) is not None:
        with storage.open_output(uri) as f:
            torch.save(payload, f)
    else:  # torch.save wants a seekable file: write locally, then stream it up
        with private_tmpdir("ckpt") as d:
            torch.save(payload, Path(d) / name)
            storage.upload(Path(d) / name, uri)
    storage.write_json(join(ckpt_dir, "latest.json"), {"step": int(step), "file": name})
    if keep > 0:
        old = sorted(e.uri for e in storage.list(ckpt_dir, suffix=".pt") if _CHECKPOINT_NAME.match(e.name))
        for stale in old[:-keep]:
            storage.delete(stale)
    return uri


class CheckpointError(ValueError, pickle.UnpicklingError):
    """A checkpoint (or ckpt/latest.json) that cannot be used; the message names the file and why. Also an
    UnpicklingError, which is what torch raises when weights_only=True refuses a file."""


_CHECKPOINT_NAME = re.compile(r"^step-[0-9]{1,12}\.pt$")
_KEYS = ("step", "model", "optimizer", "loader", "rng", "config")


def latest_checkpoint(ckpt_dir: str | Path, storage: Storage | None = None) -> str | None:
    """The file ckpt/latest.json names: a step-NNNNNNNN.pt beside it, nothing else (no path, no '..')."""
    storage = storage or default_storage()
    ckpt_dir = normalize(str(ckpt_dir))
    latest = join(ckpt_dir, "latest.json")
    if not storage.exists(latest):
        return None
    try:
        name = json.loads(storage.read_bytes(latest))["file"]
    except (ValueError, KeyError, TypeError) as e:  # JSON and UTF-8 errors are ValueErrors
        raise CheckpointError(f"{latest} is not a checkpoint pointer ({type(e).__name__}: {e})") from None
    if not isinstance(name, str) or not _CHECKPOINT_NAME.match(name):
        raise CheckpointError(f"{latest} names {name!r:.200}: expected a step-NNNNNNNN.pt file in {ckpt_dir}")
    path = join(ckpt_dir, name)
    if not storage.exists(path):
        raise FileNotFoundError(f"{latest} names {name}, which does not exist")
    return path


def load_checkpoint(path: str | Path, storage: Storage | None = None) -> dict:
    """The checkpoint's plain contents (config decoded from JSON); tensors land on the CPU. Raises
    CheckpointError, naming the file, for a truncated, foreign or malformed file. A checkpoint on an object
    store is streamed to a local temporary file first (torch.load needs a seekable file) and removed after."""
    storage = storage or default_storage()
    path = str(path)
    local = storage.local_path(path)
    if local is not None:
        return _load(local, path)
    with private_tmpdir("ckpt") as d:
        try:
            copy_to_local(path, Path(d) / basename(path), storage)
        except OSError as e:
            raise CheckpointError(f"{path}: cannot be downloaded ({type(e).__name__}: {str(e)[:300]})") from None
        return _load(Path(d) / basename(path), path)


def _load(local: Path, name: str) -> dict:
    try:
        payload = torch.load(local, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refused it, or it is not a torch file at all
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{name}: refused, not a plain-data torch checkpoint ({first[:300]})") from None
    except (RuntimeError, EOFError, ValueError, OSError) as e:  # truncated zip, short read, ...
        raise CheckpointError(f"{name}: not a readable checkpoint, truncated or corrupt "
                              f"({type(e).__name__}: {str(e).strip()[:300]})") from None
    if not isinstance(payload, dict) or not all(k in payload for k in _KEYS):
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{name}: not a crawlproc checkpoint (expected keys {list(_KEYS)}, got {keys})")
    try:
        payload["config"] = json.loads(payload["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{name}: its config is not JSON ({e})") from None
    return payload
