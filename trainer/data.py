"""Stream token shards into (x, y) training blocks: packed, shuffled from a seed, split by rank, resumable.

The unit of reading is one Parquet row group. Each epoch visits every row group in an order drawn from
(seed, epoch) and, inside a row group, its documents in an order drawn from (seed, epoch, row group); each
document is followed by the end-of-text token, and the resulting stream is cut into blocks of block_size + 1
tokens (x = block[:-1], y = block[1:]; consecutive blocks share one token, so no token is skipped).

Every rank walks the same global stream and keeps its own slice of each global batch: rank r takes blocks
[r*B, (r+1)*B) of every world_size*B. So 2 ranks with batch B see exactly the batches of 1 rank with 2B, and
the loader's whole position is three integers (epoch, row-group index, token offset), the same on all ranks.
Decoding the full stream on every rank is cheap: a GPU consumes tokens at a few MB/s of uint16.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from trainer.shards import ShardError, read_manifest, shard_files

log = logging.getLogger(__name__)


class PackedStream:
    """The infinite token stream of one split, with documents separated by eot, in a seeded order."""

    def __init__(self, files: list[Path], eot_id: int, vocab_size: int, seed: int = 0, shuffle: bool = True):
        self.eot_id, self.vocab_size, self.seed, self.shuffle = eot_id, vocab_size, seed, shuffle
        self.units: list[tuple[Path, int]] = []  # (file, row group)
        for f in files:
            try:
                n = pq.ParquetFile(f).num_row_groups
            except Exception as e:  # a truncated or foreign file: name it instead of a bare arrow error
                raise ShardError(f"cannot read token shard {f}: {e}") from e
            self.units.extend((f, g) for g in range(n))
        if not self.units:
            raise ShardError("no token shards for this split")
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._orders: dict[int, np.ndarray] = {}
        self.epoch, self.unit, self.offset = 0, 0, 0

    # -- position ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "unit": self.unit, "offset": self.offset, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.epoch, self.unit, self.offset = int(state["epoch"]), int(state["unit"]), int(state["offset"])
        self._orders.clear()
        self._cache.clear()

    # -- reading ----------------------------------------------------------------------------------------
    def _unit_order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            n = len(self.units)
            order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
            self._orders = {epoch: order}  # only the current epoch is ever needed
        return self._orders[epoch]

    def _unit_tokens(self, epoch: int, pos: int) -> np.ndarray:
        """The flat tokens of the row group at position `pos` of `epoch`: its documents, each + eot."""
        key = (epoch, pos)
        if key in self._cache:
            return self._cache[key]
        uid = int(self._unit_order(epoch)[pos])
        path, group = self.units[uid]
        try:
            col = pq.ParquetFile(path).read_row_group(group, columns=["tokens"]).column("tokens")
        except Exception as e:
            raise ShardError(f"cannot read row group {group} of {path}: {e}") from e
        arr = col.combine_chunks()
        values = arr.values.to_numpy(zero_copy_only=False)
        offsets = arr.offsets.to_numpy()
        lengths = np.diff(offsets)
        if values.size and int(values.max()) >= self.vocab_size:
            raise ShardError(
                f"{path} row group {group}: token id {int(values.max())} >= vocab_size {self.vocab_size}"
            )
        docs = np.flatnonzero(lengths > 0)  # empty documents carry nothing, not even an eot
        if self.shuffle:
            docs = docs[np.random.default_rng([self.seed, epoch, uid]).permutation(len(docs))]
        flat = np.empty(int(lengths[docs].sum()) + len(docs), dtype=np.int64)
        at = 0
        for d in docs:
            n = int(lengths[d])
            flat[at : at + n] = values[offsets[d] - offsets[0] : offsets[d + 1] - offsets[0]]
            flat[at + n] = self.eot_id
            at += n + 1
        self._cache[key] = flat
        while len(self._cache) > 2:  # the current row group and the next are enough
            self._cache.popitem(last=False)
        return flat

    def _read(self, pos: tuple[int, int, int], n: int, out: np.ndarray | None) -> tuple[int, int, int]:
        """Copy n tokens from pos into out (or just skip them when out is None); return the position after."""
        epoch, unit, offset = pos
        filled, empty_units = 0, 0
        while filled < n:
            if unit >= len(self.units):
                epoch, unit, offset = epoch + 1, 0, 0
            flat = self._unit_tokens(epoch, unit)
            take = min(n - filled, len(flat) - offset)
            if take <= 0:
                unit, offset = unit + 1, 0
                empty_units += 1
                if empty_units > 2 * len(self.units):
                    raise ShardError("the split's shards hold no tokens")
                continue
            empty_units = 0
            if out is not None:
                out[filled : filled + take] = flat[offset : offset + take]
            filled, offset = filled + take, offset + take
        return epoch, unit, offset

    def next_block(self, block_size: int, out: np.ndarray | None = None) -> np.ndarray | None:
        """The next block_size + 1 tokens; the stream then advances by block_size (None out: skip only)."""
        pos = (self.epoch, self.unit, self.offset)
        after = self._read(pos, block_size, out[:block_size] if out is not None else None)
        if out is not None:
            self._read(after, 1, out[block_size:])
        self.epoch, self.unit, self.offset = after
        return out


class ShardLoader:
    """Batches (x, y) of shape (batch_size, block_size) for one data-parallel rank, from tokens/<name>/."""

    def __init__(
        self,
        tokens_dir: str | Path,
        split: str,
        batch_size: int,
        block_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        device: str | torch.device = "cpu",
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        manifest = read_manifest(tokens_dir)
        tok = manifest["tokenizer"]
        self.eot_id, self.vocab_size = tok["eot_id"], tok["vocab_size"]
        self.stream = PackedStream(
            shard_files(tokens_dir, split, manifest), self.eot_id, self.vocab_size, seed, shuffle
        )
        self.batch_size, self.block_size = batch_size, block_size
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = self.batch_size, self.block_size
        buf = np.empty((B, T + 1), dtype=np.int64)
        for i in range(self.world_size * B):
            owner, row = divmod(i, B)
            self.stream.next_block(T, buf[row] if owner == self.rank else None)
        t = torch.from_numpy(buf)
        if self.device.type == "cuda":
            t = t.pin_memory().to(self.device, non_blocking=True)
        return t[:, :-1].contiguous(), t[:, 1:].contiguous()

    def state_dict(self) -> dict:
        return self.stream.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state)

    def reset(self) -> None:
        """Back to the start of epoch 0 (validation reads the same batches at every evaluation)."""
        self.stream.load_state_dict({"epoch": 0, "unit": 0, "offset": 0, "seed": self.stream.seed})


def has_split(tokens_dir: str | Path, split: str) -> bool:
    manifest = read_manifest(tokens_dir)
    return any(s.get("split") == split for s in manifest["shards"])
