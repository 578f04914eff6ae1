"""Stream token shards into (x, y) training blocks: packed, shuffled from a seed, split by rank, resumable,
read through crawlproc.store.storage (a local folder or an object store) with read-ahead.

The unit of reading is one Parquet row group. Each epoch visits every row group in an order drawn from
(seed, epoch) and, inside a row group, its documents in an order drawn from (seed, epoch, row group); each
document is followed by the end-of-text token, and the resulting stream is cut into blocks of block_size + 1
tokens (x = block[:-1], y = block[1:]; consecutive blocks share one token, so no token is skipped).

Every rank walks the same global stream and keeps its own slice of each global batch: rank r takes blocks
[r*B, (r+1)*B) of every world_size*B. So 2 ranks with batch B see exactly the batches of 1 rank with 2B, and
the loader's whole position is three integers (epoch, row-group index, token offset), the same on all ranks.
Decoding the full stream on every rank is cheap: a GPU consumes tokens at a few MB/s of uint16.

Read-ahead: background threads fetch and decode the next `prefetch` row groups of the seeded order while the
model trains on the current one, so a GPU does not wait on the network (an object store answers in tens of
milliseconds; a row group of 8192 documents is ~10 MB). What is read is decided by the position alone, never
by timing, so the batches are the same with or without read-ahead, locally or from S3. Memory is bounded: at
most `prefetch` + 1 decoded row groups (in the shards' uint16/uint32) are held. Transient object-store errors
(503 SlowDown, resets, short reads) are retried by the storage layer's S3 retry strategy.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pyarrow.parquet as pq
import torch

from crawlproc.store.storage import Storage
from tokenizer.tokenset import ShardError, TokenSet, open_token_set

log = logging.getLogger(__name__)

DEFAULT_PREFETCH = 4  # row groups read ahead


class PackedStream:
    """The infinite token stream of one split, with documents separated by eot, in a seeded order."""

    def __init__(self, files: list[str], eot_id: int, vocab_size: int, seed: int = 0, shuffle: bool = True,
                 storage: Storage | None = None, prefetch: int = DEFAULT_PREFETCH):
        self.eot_id, self.vocab_size, self.seed, self.shuffle = eot_id, vocab_size, seed, shuffle
        self.storage = storage or Storage()
        self.units: list[tuple[str, int]] = []  # (file, row group)
        self._meta: dict[str, pq.FileMetaData] = {}  # footers read once: a row-group read is then one request
        with ThreadPoolExecutor(max_workers=8) as pool:  # footers of many shards on an object store
            for f, meta in zip(files, pool.map(self._footer, files)):
                self._meta[f] = meta
                self.units.extend((f, g) for g in range(meta.num_row_groups))
        if not self.units:
            raise ShardError("no token shards for this split")
        self.prefetch = max(0, int(prefetch))
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(self.prefetch, 4)), thread_name_prefix="readahead")
        self._ahead: OrderedDict[tuple[int, int], Future] = OrderedDict()
        self._orders: dict[int, np.ndarray] = {}
        self.epoch, self.unit, self.offset = 0, 0, 0

    def _footer(self, uri: str) -> pq.FileMetaData:
        try:
            with self.storage.open_input(uri) as f:
                return pq.ParquetFile(f).metadata
        except Exception as e:  # a truncated or foreign file: name it instead of a bare arrow error
            raise ShardError(f"cannot read token shard {uri}: {e}") from e

    # -- position ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "unit": self.unit, "offset": self.offset, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if int(state["seed"]) != self.seed:  # row groups read ahead depend on the seed: drop them
            self.seed = int(state["seed"])
            self._orders.clear()
            self._drop_ahead(keep=lambda key: False)
        self.epoch, self.unit, self.offset = int(state["epoch"]), int(state["unit"]), int(state["offset"])

    def close(self) -> None:
        self._drop_ahead(keep=lambda key: False)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- reading ----------------------------------------------------------------------------------------
    def _unit_order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            n = len(self.units)
            order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
            self._orders[epoch] = order
        return self._orders[epoch]

    def _decode(self, epoch: int, pos: int, uid: int) -> np.ndarray:
        """The flat tokens of row group `uid` read at `pos` of `epoch`: its documents, each + eot, in the
        shards' own dtype (uint16 for vocabularies up to 65536: 4x less memory than int64)."""
        path, group = self.units[uid]
        try:
            with self.storage.open_input(path) as f:
                col = pq.ParquetFile(f, metadata=self._meta[path]).read_row_group(group, columns=["tokens"])
        except Exception as e:
            raise ShardError(f"cannot read row group {group} of {path}: {e}") from e
        arr = col.column("tokens").combine_chunks()
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
        dtype = np.uint16 if self.vocab_size <= 1 << 16 else np.uint32
        flat = np.empty(int(lengths[docs].sum()) + len(docs), dtype=dtype)
        # each document's tokens followed by eot, in the drawn order: one gather over precomputed indices
        starts = offsets[docs] - offsets[0]
        lens = lengths[docs]
        ends = np.cumsum(lens + 1)
        heads = ends - lens - 1  # where each document starts in flat
        index = np.repeat(starts - heads, lens + 1) + np.arange(len(flat))
        is_eot = np.zeros(len(flat), dtype=bool)
        is_eot[ends - 1] = True
        flat[~is_eot] = values[index[~is_eot]]
        flat[is_eot] = self.eot_id
        return flat

    def _key_after(self, key: tuple[int, int]) -> tuple[int, int]:
        epoch, pos = key
        return (epoch, pos + 1) if pos + 1 < len(self.units) else (epoch + 1, 0)

    def _submit(self, key: tuple[int, int]) -> Future:
        fut = self._ahead.get(key)
        if fut is None:
            epoch, pos = key
            uid = int(self._unit_order(epoch)[pos])
            fut = self._ahead[key] = self._pool.submit(self._decode, epoch, pos, uid)
        return fut

    def _drop_ahead(self, keep) -> None:
        for key in [k for k in self._ahead if not keep(k)]:
            self._ahead.pop(key).cancel()

    def _unit_tokens(self, epoch: int, pos: int) -> np.ndarray:
        """The row group at position `pos` of `epoch`, and the next `prefetch` ones scheduled behind it."""
        key = (epoch, pos)
        window = [key]
        for _ in range(self.prefetch):
            window.append(self._key_after(window[-1]))
        wanted = set(window)
        self._drop_ahead(keep=lambda k: k in wanted)  # behind us, or from before a load_state_dict
        for old in [e for e in self._orders if e < epoch]:  # orders of the epochs the window spans are kept
            del self._orders[old]
        fut = self._submit(key)
        for k in window[1:]:
            self._submit(k)
        return fut.result()  # a read error surfaces here, at the row group that needed it

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
    """Batches (x, y) of shape (batch_size, block_size) for one data-parallel rank, from a token set (a
    tokens/<name> folder or URI, or an opened TokenSet)."""

    def __init__(
        self,
        tokens: str | TokenSet,
        split: str,
        batch_size: int,
        block_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        device: str | torch.device = "cpu",
        storage: Storage | None = None,
        prefetch: int = DEFAULT_PREFETCH,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        tokset = tokens if isinstance(tokens, TokenSet) else open_token_set(str(tokens), storage)
        self.eot_id, self.vocab_size = tokset.eot_id, tokset.vocab_size
        self.stream = PackedStream(tokset.shard_uris(split), self.eot_id, self.vocab_size, seed, shuffle,
                                   storage=tokset.storage, prefetch=prefetch)
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

    def close(self) -> None:
        self.stream.close()
