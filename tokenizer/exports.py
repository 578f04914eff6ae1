"""Token sets in the formats other trainers read, written as streams: documents go in batch by batch (a row
group's tokens column: flat values and offsets), bytes go out to any binary sink (a local file, an
object-store upload stream). Nothing here holds more than one batch.

llm.c's `.bin` (dev/data/data_common.py's layout, read by train_gpt2.py's _load_data_shard and the C
dataloader): a header of 256 little-endian int32 -- magic 20240520, version 1, the token count, zeros -- then
the tokens as uint16; each document is preceded by the end-of-text token, as llm.c's data scripts write them.
Vocabularies over 65536 ids use llm.c's uint32 variant (magic 20240801, version 7). The count is in the
header, so it is announced up front (from the manifest) and checked when the file is closed.

nanoGPT's `train.bin` / `val.bin` (what its data/openwebtext/prepare.py writes and its train.py reads with
`np.memmap(..., dtype=np.uint16, mode='r')`): raw uint16 tokens, no header, the end-of-text token after each
document. A vocabulary over 65536 ids does not fit.

Megatron's indexed dataset (`<prefix>.bin` + `<prefix>.idx`, megatron.core.datasets.indexed_dataset):
`.bin` holds each document's tokens followed by the end-of-document token (what Megatron's
preprocess_data.py --append-eod writes), one sequence per document, in uint16 for vocabularies under 65500
ids and int32 otherwise (Megatron's own rule). `.idx`: b"MMIDIDX\\x00\\x00", version 1 (uint64), dtype code
(uint8), sequence count and document count (uint64), then the sequence lengths (int32), their byte offsets
in .bin (int64) and the document boundaries (int64, 0 then one per document). The lengths are spilled to a
caller-given temporary file while .bin streams, and .idx is written from it at the end.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import numpy as np

LLMC_HEADER_INTS = 256
LLMC_FORMATS = {np.dtype(np.uint16): (20240520, 1), np.dtype(np.uint32): (20240801, 7)}
MEGATRON_INDEX_MAGIC = b"MMIDIDX\x00\x00"
MEGATRON_DTYPE_CODES = {np.dtype(t): c for t, c in ((np.uint8, 1), (np.int8, 2), (np.int16, 3), (np.int32, 4),
                                                     (np.int64, 5), (np.float64, 6), (np.float32, 7), (np.uint16, 8))}
_CHUNK = 1 << 20  # lengths per read when writing .idx


class ExportError(ValueError):
    """A token set that cannot be written in a format (too large for it, counts that do not add up)."""


def llmc_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def megatron_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size < 65500 else np.dtype(np.int32)


def with_separators(values: np.ndarray, offsets: np.ndarray, sep: int, before: bool, dtype) -> np.ndarray:
    """The documents of a batch (values[offsets[i]:offsets[i+1]]) joined with `sep` before (llm.c) or after
    (Megatron's end of document) each one."""
    n = len(offsets) - 1
    rel = offsets - offsets[0]
    flat = np.empty(len(values) + n, dtype=dtype)
    at = (rel[:-1] if before else rel[1:]) + np.arange(n)
    mask = np.zeros(len(flat), dtype=bool)
    mask[at] = True
    flat[mask] = sep
    flat[~mask] = values
    return flat


class LlmcWriter:
    """One llm.c .bin file of exactly `n_tokens` tokens (documents plus one end-of-text token each)."""

    def __init__(self, sink: BinaryIO, n_tokens: int, eot_id: int, vocab_size: int):
        self.dtype = llmc_dtype(vocab_size)
        if n_tokens >= 2**31:
            raise ExportError(f"{n_tokens:,} tokens do not fit one llm.c file (< 2**31): lower max tokens per file")
        magic, version = LLMC_FORMATS[self.dtype]
        header = np.zeros(LLMC_HEADER_INTS, dtype="<i4")
        header[:3] = magic, version, n_tokens
        self.sink, self.expected, self.eot_id, self.written = sink, n_tokens, eot_id, 0
        sink.write(header.tobytes())

    def add(self, values: np.ndarray, offsets: np.ndarray) -> None:
        flat = with_separators(values, offsets, self.eot_id, before=True, dtype=self.dtype.newbyteorder("<"))
        self.sink.write(flat.tobytes())
        self.written += len(flat)

    def close(self) -> int:
        if self.written != self.expected:
            raise ExportError(f"the header announces {self.expected:,} tokens but {self.written:,} were written "
                              "(the manifest's counts do not match its shards)")
        return self.written


class NanoGPTWriter:
    """nanoGPT's raw uint16 stream: every document followed by the end-of-text token."""

    def __init__(self, sink: BinaryIO, eot_id: int, vocab_size: int):
        if vocab_size > 1 << 16:
            raise ExportError(f"a vocabulary of {vocab_size:,} ids does not fit nanoGPT's uint16 train.bin: use "
                              "--format llmc (it has a uint32 variant) or megatron")
        self.sink, self.eot_id, self.tokens, self.documents = sink, eot_id, 0, 0

    def add(self, values: np.ndarray, offsets: np.ndarray) -> None:
        flat = with_separators(values, offsets, self.eot_id, before=False, dtype=np.dtype("<u2"))
        self.sink.write(flat.tobytes())
        self.tokens += len(flat)
        self.documents += len(offsets) - 1


class MegatronWriter:
    """A Megatron indexed dataset: stream documents into `bin_sink`, then `finish(idx_sink)`. `spill` is a
    read/write binary file (e.g. tempfile.TemporaryFile()) that holds the sequence lengths meanwhile."""

    def __init__(self, bin_sink: BinaryIO, spill: BinaryIO, eod_id: int, vocab_size: int):
        self.dtype = megatron_dtype(vocab_size)
        self.bin, self.spill, self.eod_id = bin_sink, spill, eod_id
        self.documents = self.tokens = 0

    def add(self, values: np.ndarray, offsets: np.ndarray) -> None:
        flat = with_separators(values, offsets, self.eod_id, before=False, dtype=self.dtype.newbyteorder("<"))
        self.bin.write(flat.tobytes())
        lengths = (np.diff(offsets) + 1).astype("<i4")
        self.spill.write(lengths.tobytes())
        self.documents += len(lengths)
        self.tokens += len(flat)

    def finish(self, idx_sink: BinaryIO) -> dict:
        n = self.documents
        idx_sink.write(MEGATRON_INDEX_MAGIC + struct.pack("<Q", 1) + struct.pack("<B", MEGATRON_DTYPE_CODES[self.dtype])
                       + struct.pack("<Q", n) + struct.pack("<Q", n + 1))
        self.spill.seek(0)
        while chunk := self.spill.read(4 * _CHUNK):  # the lengths
            idx_sink.write(chunk)
        self.spill.seek(0)
        at = 0
        item = self.dtype.itemsize
        while chunk := self.spill.read(4 * _CHUNK):  # each sequence's byte offset in .bin
            lengths = np.frombuffer(chunk, dtype="<i4").astype(np.int64)
            pointers = at + np.concatenate(([0], np.cumsum(lengths[:-1]))) * item
            idx_sink.write(pointers.astype("<i8").tobytes())
            at = int(pointers[-1] + lengths[-1] * item)
        for start in range(0, n + 1, _CHUNK):  # one sequence per document: boundaries 0, 1, ..., n
            idx_sink.write(np.arange(start, min(n + 1, start + _CHUNK), dtype="<i8").tobytes())
        return {"documents": n, "tokens": self.tokens, "dtype": self.dtype.name}
