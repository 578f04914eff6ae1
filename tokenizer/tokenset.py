"""A token set (tokens/<name>/, or any folder or URI holding one): the one module that reads and writes its
manifest, shards and tokenizer files, on a local disk or an object store through crawlproc's Storage.

What the files hold is tokenizer/shards.py's (pure tables and dicts); where they lie is
crawlproc.store.layout.TokenSetDir's. Every reader (tokenize resuming, mix, export, the trainer, the report,
`crawlproc tokens`) opens a token set with `open_token_set` and gets its manifest checked; every writer
commits with `write_manifest`, last, after every shard it lists is written, so a token set without a
manifest is one being built and is never read.

Opening also checks what readers rely on, so that damage is one ShardError line naming the file and the fix
instead of a KeyError or a traceback half-way through (or, worse, a silent export): every shard entry has its
counts (check_manifest), every listed shard exists (one LIST), and -- for the readers of the tokens themselves (mix, export,
train) -- each shard's footer agrees with the manifest: its document count, and its largest token id below
the vocabulary size (the column statistics Parquet keeps per row group; a shard without them is checked as
its row groups stream, by the trainer's loader and the export).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from crawlproc.store.layout import TokenSetDir
from crawlproc.store.storage import Storage, default_storage, json_bytes, normalize
from tokenizer.core import EOT, BPETokenizer
from tokenizer.formats import HF_FILE, TOKENIZER_FILES, tokenizer_files, tokenizer_from_json_bytes, tokenizer_info
from tokenizer.shards import (
    ROW_GROUP_DOCS, SPLITS, ShardError, check_manifest, doc_lengths, manifest_digest, merge_parts, new_manifest,
    parquet_options, parse_manifest, shard_name, token_dtype, tokens_table,
)

__all__ = ["EOT", "ShardError", "TokenSet", "TokenSetDir", "open_token_set", "token_set_dir"]


def token_set_dir(where: str | TokenSetDir, storage: Storage | None = None) -> TokenSetDir:
    """The folder of a token set given as a path, a URI or already as a TokenSetDir."""
    if isinstance(where, TokenSetDir):
        return where
    return TokenSetDir(normalize(str(where)), storage or default_storage())


@dataclass
class TokenSet:
    """An opened token set: its checked manifest and where its files lie."""

    dir: TokenSetDir
    manifest: dict
    digest: str  # sha256 of manifest.json's bytes: which token set a run trained on, a mix or export was made of

    @property
    def uri(self) -> str:
        return self.dir.uri

    @property
    def storage(self) -> Storage:
        return self.dir.storage

    @property
    def name(self) -> str:
        return self.manifest.get("name") or self.dir.name

    @property
    def tokenizer(self) -> dict:
        return self.manifest["tokenizer"]

    @property
    def vocab_size(self) -> int:
        return self.tokenizer["vocab_size"]

    @property
    def eot_id(self) -> int:
        return self.tokenizer["eot_id"]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.manifest.get("dtype") or token_dtype(self.vocab_size))

    @property
    def mix(self) -> dict | None:
        """The mix recipe when this token set was made by `crawlproc mix`."""
        return self.manifest.get("mix")

    def shards(self, split: str | None = None) -> list[dict]:
        """The manifest's shard entries ({split, file, tokens, documents}) in order, of one split or all."""
        return [s for s in self.manifest["shards"] if split is None or s["split"] == split]

    def has_split(self, split: str) -> bool:
        return bool(self.shards(split))

    def shard_uris(self, split: str) -> list[str]:
        """The split's shards in manifest order; a listed shard that is missing is an error, not a skip."""
        uris = [self.dir.path(s["file"]) for s in self.shards(split)]
        present = {e.uri for e in self.storage.list(self.uri, suffix=".parquet")}
        missing = [u for u in uris if u not in present]
        if missing:
            raise ShardError(f"manifest lists shards that do not exist: {', '.join(missing[:5])}"
                             + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        return uris

    def read(self, name: str) -> bytes | None:
        """A file of the token set (tokenizer.json, ...), or None when it is not there."""
        uri = self.dir.path(name)
        return self.storage.read_bytes(uri) if self.storage.exists(uri) else None

    def load_tokenizer(self, name: str | None = None) -> BPETokenizer:
        """The tokenizer the shards were encoded with (tokenizer.json), checked against the manifest."""
        data = self.read(HF_FILE)
        if data is None:
            raise ShardError(f"{self.dir.path(HF_FILE)} not found: this token set has no tokenizer file")
        sha = self.tokenizer.get("sha256")
        if sha and hashlib.sha256(data).hexdigest() != sha:
            raise ShardError(f"{self.dir.path(HF_FILE)} is not the tokenizer its manifest names (sha256 differs)")
        return tokenizer_from_json_bytes(data, name or self.name, self.dir.path(HF_FILE))


    # --- reading documents back (`crawlproc tokens`) ----------------------------------------------------------
    def documents(self, split: str | None = None, ids: bool = True):
        """(split, shard file, id, tokens as numpy) of every document, in manifest order, row group by row
        group (one row group in memory at a time)."""
        import pyarrow.parquet as pq

        columns = ["id", "tokens"] if ids else ["tokens"]
        for s in self.shards(split):
            with self.storage.open_input(self.dir.path(s["file"])) as f:
                pf = pq.ParquetFile(f)
                for g in range(pf.num_row_groups):
                    t = pf.read_row_group(g, columns=columns)
                    tok = t.column("tokens").combine_chunks()
                    values, offsets = tok.values.to_numpy(zero_copy_only=False), tok.offsets.to_numpy()
                    names = t.column("id").to_pylist() if ids else [None] * t.num_rows
                    for i, doc_id in enumerate(names):
                        yield s["split"], s["file"], doc_id, values[offsets[i]:offsets[i + 1]]

    def find(self, doc_id: str) -> tuple[str, str, np.ndarray] | None:
        """(split, shard file, tokens) of the document with this id, or None. Reads each shard's id column
        first and the tokens of the one row group that holds it."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        for s in self.shards():
            with self.storage.open_input(self.dir.path(s["file"])) as f:
                pf = pq.ParquetFile(f)
                for g in range(pf.num_row_groups):
                    hits = pc.index(pf.read_row_group(g, columns=["id"]).column("id"), doc_id).as_py()
                    if hits >= 0:
                        tokens = pf.read_row_group(g, columns=["tokens"]).column("tokens")[hits].values
                        return s["split"], s["file"], tokens.to_numpy(zero_copy_only=False)
        return None

    def lengths(self, split: str) -> np.ndarray:
        """Tokens per document of a split (reads only the tokens column's list offsets)."""
        import pyarrow.parquet as pq

        out = [np.zeros(0, dtype=np.int64)]
        for s in self.shards(split):
            with self.storage.open_input(self.dir.path(s["file"])) as f:
                t = pq.read_table(f, columns=["tokens"])
            out.append(doc_lengths(t.column("tokens")))
        return np.concatenate(out)


def read_manifest(where: str | TokenSetDir, storage: Storage | None = None) -> tuple[dict, str] | None:
    """(checked manifest, digest) of a token set, or None when it has none (not built, or being built)."""
    d = token_set_dir(where, storage)
    try:
        data = d.storage.read_bytes(d.manifest_uri)
    except FileNotFoundError:
        return None
    except OSError as e:
        if d.storage.exists(d.manifest_uri):
            raise ShardError(f"cannot read {d.manifest_uri}: {e}") from e
        return None
    return parse_manifest(data, d.manifest_uri, local_root=d.storage.local_path(d.uri)), manifest_digest(data)


def open_token_set(where: str | TokenSetDir, storage: Storage | None = None, verify: str = "shards") -> TokenSet:
    """The finished token set at `where` (a tokens/<name> folder or URI), its manifest checked; a folder
    without a manifest is an error naming the commands that write one. `verify`: "manifest" (counts present,
    listed shards exist) or "shards" (also each shard's footer: documents and largest token id); see the
    module docstring. Damage is a ShardError."""
    d = token_set_dir(where, storage)
    found = read_manifest(d)
    if found is None:
        raise ShardError(f"{d.manifest_uri} not found: pass a tokens/<name> folder written by `crawlproc "
                         "tokenize` or `crawlproc mix` (a folder without it is unfinished)")
    tokset = TokenSet(d, *found)
    check_token_set(tokset, footers=verify == "shards")
    return tokset


_REMAKE = "the token set is damaged: make it again (`crawlproc tokenize --force`, or the `crawlproc mix` that made it)"


def check_token_set(tokset: TokenSet, footers: bool = True, threads: int = 8) -> None:
    """What a reader relies on (see the module docstring); ShardError naming the first problem."""
    where = tokset.dir.manifest_uri
    shards = tokset.shards()  # each with its counts (check_manifest)
    present = {e.name for e in tokset.storage.list(tokset.uri, suffix=".parquet")}
    missing = [s["file"] for s in shards if s["file"] not in present]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ShardError(f"{where} lists {len(missing)} shard(s) that do not exist ({', '.join(missing[:3])}{more}); "
                         f"{_REMAKE}")
    if not footers or not shards:
        return
    vocab = tokset.vocab_size
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(shards)))) as pool:
        for s, (rows, top) in zip(shards, pool.map(lambda s: _footer_facts(tokset, s["file"]), shards)):
            if rows != s["documents"]:
                raise ShardError(f"{tokset.dir.path(s['file'])} holds {rows:,} documents where {where} says "
                                 f"{s['documents']:,}; {_REMAKE}")
            if top is not None and top >= vocab:
                raise ShardError(f"{tokset.dir.path(s['file'])} holds token id {top}, outside the vocabulary of "
                                 f"{vocab} (ids 0..{vocab - 1}) that {where} declares; {_REMAKE}")


def _footer_facts(tokset: TokenSet, name: str) -> tuple[int, int | None]:
    """(rows, largest token id or None when a row group has no statistics) from one shard's footer."""
    uri = tokset.dir.path(name)
    try:
        with tokset.storage.open_input(uri) as f:
            meta = pq.ParquetFile(f).metadata
    except Exception as e:  # noqa: BLE001 -- pyarrow raises several kinds for a file that is not Parquet
        raise ShardError(f"{uri} is not a readable Parquet shard ({type(e).__name__}: {str(e)[:200]}); "
                         f"{_REMAKE}") from None
    leaf = [j for j in range(meta.num_columns) if meta.schema.column(j).path.startswith("tokens.")]
    if not leaf:
        raise ShardError(f"{uri} has no tokens column; {_REMAKE}")
    top: int | None = -1
    for g in range(meta.num_row_groups):
        col = meta.row_group(g).column(leaf[0])
        if col.num_values == 0:
            continue
        stats = col.statistics
        if stats is None or not stats.has_min_max:
            top = None  # no statistics: the readers check ids as the row groups stream
            break
        top = max(top, int(stats.max))
    return meta.num_rows, (None if top is None or top < 0 else top)


def write_manifest(d: TokenSetDir, manifest: dict) -> str:
    """The commit point of a token set: written last, after every shard it lists. Returns its digest."""
    check_manifest(manifest, d.manifest_uri)
    data = json_bytes(manifest)
    d.storage.write_bytes(d.manifest_uri, data)
    return manifest_digest(data)


def write_shard(d: TokenSetDir, name: str, table: pa.Table) -> None:
    d.storage.write_table(d.path(name), table, row_group_size=ROW_GROUP_DOCS, **parquet_options(table.column_names))


def write_tokenizer(d: TokenSetDir, tok: BPETokenizer) -> dict:
    """The tokenizer's files into the token set; returns its manifest entry."""
    files = tokenizer_files(tok)
    for name, data in files.items():
        d.storage.write_bytes(d.path(name), data)
    return tokenizer_info(tok, files[HF_FILE])


def write_piece(d: TokenSetDir, name: str, table: pa.Table) -> None:
    d.storage.write_table(d.piece(name), table, row_group_size=ROW_GROUP_DOCS, **parquet_options(table.column_names))


def read_piece(d: TokenSetDir, name: str) -> pa.Table:
    return d.storage.read_table(d.piece(name))


def remove_unlisted_pieces(d: TokenSetDir, manifest: dict) -> int:
    """Delete the val pieces no part of the (just committed) manifest names. Returns how many."""
    listed = {p["val_piece"]["file"] for p in (manifest.get("parts") or {}).values() if p.get("val_piece")}
    return _remove_unlisted(d.storage, d.pieces_dir, listed)


def copy_tokenizer(src: TokenSet, d: TokenSetDir) -> None:
    """The source's tokenizer files into another token set (a mix keeps its sources' tokenizer)."""
    for name in TOKENIZER_FILES:
        data = src.read(name)
        if data is not None:
            d.storage.write_bytes(d.path(name), data)


def remove_unlisted_shards(d: TokenSetDir, manifest: dict) -> int:
    """Delete the shards the (just committed) manifest does not list: an earlier version's, or a crashed
    command's. Returns how many."""
    return _remove_unlisted(d.storage, d.uri, {s["file"] for s in manifest["shards"]})


def _remove_unlisted(storage: Storage, folder: str, listed: set[str]) -> int:
    n = 0
    for e in storage.list(folder, suffix=".parquet"):
        if e.name not in listed:
            storage.delete(e.uri)
            n += 1
    return n


# --- a small writer for tests and benchmarks (the stages write through their units) -----------------------


def write_token_set(
    out_dir: str,
    splits: dict[str, list[list[int]]],
    vocab_size: int,
    eot_id: int,
    docs_per_shard: int = 1000,
    docs_per_row_group: int = 100,
    tokenizer_file: str | None = None,
    name: str | None = None,
    ids: dict[str, list[str]] | None = None,
    storage: Storage | None = None,
) -> dict:
    """Write {split: [token list per document]} as a token set (shards, one part "p0", manifest.json). Ids
    default to `<name>/<split>/<i>` (unique across token sets of other names)."""
    d = token_set_dir(out_dir, storage)
    name = name or d.name
    dtype = token_dtype(vocab_size)
    tok = {"file": None, "tiktoken_file": None, "sha256": None, "vocab_size": vocab_size, "eot_token": EOT,
           "eot_id": eot_id}
    if tokenizer_file is not None:
        data = default_storage().read_bytes(normalize(str(tokenizer_file)))
        if normalize(str(tokenizer_file)) != d.path(HF_FILE):
            d.storage.write_bytes(d.path(HF_FILE), data)
        tok.update(file=HF_FILE, sha256=hashlib.sha256(data).hexdigest())
    shards = []
    for split, docs in splits.items():
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r} (one of {SPLITS})")
        names = (ids or {}).get(split) or [f"{name}/{split}/{i}" for i in range(len(docs))]
        for n, start in enumerate(range(0, len(docs), docs_per_shard)):
            part = docs[start: start + docs_per_shard]
            table = tokens_table(names[start: start + len(part)], [np.asarray(x, dtype=dtype) for x in part], dtype)
            fname = shard_name(split, "p0", n)
            write_options = {"row_group_size": docs_per_row_group, **parquet_options(table.column_names)}
            d.storage.write_table(d.path(fname), table, **write_options)
            shards.append({"split": split, "file": fname, "tokens": int(sum(map(len, part))),
                           "documents": len(part)})
    manifest = merge_parts(new_manifest(name, tok, dtype, {}), {"p0": {"source": d.uri, "shards": shards}})
    write_manifest(d, manifest)
    return manifest
