"""Step 1, per docs file: signatures/<stem>.parquet (id, content hash, has_words, MinHash band keys).

A signatures file belongs to the exact bytes of one docs file: its metadata records the MinHash settings and
the docs file's fingerprint (size and a 128-bit hash of its bytes). A signatures file made from other bytes
(a docs file rewritten under the same name, even with as many rows) or with other settings is recomputed,
never reused.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from crawlproc.dedup import files
from crawlproc.dedup.errors import DedupError
from crawlproc.dedup.minhash import MinHasher
from crawlproc.dedup.nodes import content_hashes
from crawlproc.dedup.normalize import utf8_column
from crawlproc.dedup.schemas import signature_schema
from crawlproc.recipe import MinHashConfig

SIGNATURE_VERSION = 2  # 2: Unicode digits are 0, marks dropped, words hashed 8 bytes at a time
FINGERPRINT_KEY = b"crawlproc.minhash"
DOCS_KEY = b"crawlproc.docs"


def signature_fingerprint(config: MinHashConfig, by_language: bool = False) -> str:
    """The settings part of the metadata: signatures made with other settings are recomputed, never mixed."""
    settings = {"version": SIGNATURE_VERSION, "minhash": config.identity()}
    if by_language:
        settings["by_language"] = True
    return json.dumps(settings, sort_keys=True)


def docs_fingerprint(data: bytes) -> str:
    """The content part: identifies the docs file by its bytes, not by its name or row count."""
    return f"{len(data)}:{xxhash.xxh3_128_hexdigest(data)}"


# Segmenters, not spaces, find the words of these languages' texts (crawlproc/quality/splitters.py)
_SEGMENTED = frozenset({"jieba", "sudachi", "kiwi", "pythainlp"})


def language_salt(language: str | None) -> int:
    """What a document's band keys are XORed with under dedup per language: documents of two languages never
    share a band key. English (and no language) keeps its keys unchanged, so English runs, and the band index
    of earlier English snapshots, stay as they were."""
    from crawlproc.quality import langcodes

    if not language:
        return 0
    ls = langcodes.normalize(language)
    if ls in (langcodes.ENGLISH, langcodes.UNDETERMINED):
        return 0
    return xxhash.xxh3_64_intdigest(ls.encode("utf-8"))


def words_for_dedup(texts: list[str], languages: list[str | None]) -> list[str]:
    """Each text with the words of its language separated by spaces where the language does not separate
    them itself (Chinese, Japanese, Korean, Thai), so that shingles are word n-grams there too, as FineWeb-2's
    MinhashDedupSignature(language=...) makes them; other texts unchanged."""
    from crawlproc.quality import splitters

    out = []
    for text, lang in zip(texts, languages):
        splitter = splitters.splitter_for(lang) if lang else None
        out.append(" ".join(splitter.split(text)) if splitter is not None and splitter.kind in _SEGMENTED else text)
    return out


def signature_table(ids, texts: list[str], config: MinHashConfig | None = None, batch: int = 500,
                    hasher: MinHasher | None = None, docs: str = "", languages=None) -> pa.Table:
    """The signatures file of one docs file, whose docs_fingerprint is `docs` (a task that holds the texts
    and the docs file's bytes, e.g. extract, can write it to <snapshot>/signatures/<stem>.parquet).

    `languages` (one per text, or None): dedup per language, as FineWeb-2: each text's words are its
    language's (words_for_dedup) and its band keys are salted by its language (language_salt)."""
    hasher = hasher or MinHasher(config)
    config = hasher.config
    schema = signature_schema(config.num_bands)
    if languages is not None:
        languages = languages.to_pylist() if isinstance(languages, pa.Array | pa.ChunkedArray) else list(languages)
        plain = texts.to_pylist() if isinstance(texts, pa.Array | pa.ChunkedArray) else [t or "" for t in texts]
        texts = words_for_dedup([t or "" for t in plain], languages)
    texts = utf8_column(texts if isinstance(texts, pa.Array | pa.ChunkedArray) else [t or "" for t in texts])
    ids = ids.cast(pa.string()) if isinstance(ids, pa.Array | pa.ChunkedArray) else pa.array(ids, pa.string())
    parts = []
    for i in range(0, len(texts), batch):
        chunk = texts.slice(i, batch)
        keys, has_words = hasher.band_keys_for_texts(chunk)
        if languages is not None:
            salts = np.array([language_salt(x) for x in languages[i:i + batch]], dtype=np.uint64)
            if salts.any():
                keys = keys ^ salts[:, None]
        bands = pa.FixedSizeListArray.from_arrays(pa.array(keys.reshape(-1), pa.uint64()), config.num_bands)
        parts.append(pa.Table.from_arrays(
            [ids.slice(i, batch), pa.array(content_hashes(chunk), pa.uint64()), pa.array(has_words), bands],
            schema=schema))
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    fp = signature_fingerprint(config, languages is not None and any(map(language_salt, set(languages))))
    return table.replace_schema_metadata({FINGERPRINT_KEY: fp, DOCS_KEY: docs})


def open_docs_file(path: str, data: bytes | None = None, ids: str = "column") -> pq.ParquetFile:
    """The docs file as Parquet, checked for the columns dedup needs (`id` only with ids = "column"); a
    DedupError names the file."""
    try:
        f = pq.ParquetFile(pa.BufferReader(data)) if data is not None else files.parquet_file(path)
    except Exception as e:  # noqa: BLE001 - any reader error means the same thing: not a Parquet file
        raise DedupError(f"{path}: not a readable Parquet file ({e})") from None
    missing = missing_columns(f.schema_arrow.names, ids)
    if missing:
        raise DedupError(f"{path}: lacks required column {missing[0]!r} (has {f.schema_arrow.names})"
                         + (NO_ID_HINT if missing[0] == "id" else ""))
    return f


NO_ID_HINT = (": dedup needs a unique id per document. Add --ids-from-content (recipe: dedup.ids = \"content\") "
              "to make one from each document's file, row and text hash, or add an `id` column")


def missing_columns(names: list[str], ids: str = "column") -> list[str]:
    """The columns dedup needs that a docs file lacks."""
    return [c for c in ("text", "id") if c not in names and not (c == "id" and ids == "content")]


def content_ids(stem: str, start: int, text: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Ids for documents without one: `<stem>:<row>:<xxh64 of the text>`: unique in a folder (stems are), the
    same on every rerun over the same files, and they say where the document is."""
    return pa.array([f"{stem}:{start + i}:{xxhash.xxh64_hexdigest((t or '').encode('utf-8', 'surrogatepass'))}"
                     for i, t in enumerate(text.to_pylist())], pa.string())


def with_ids(table: pa.Table, stem: str, ids: str, start: int = 0) -> pa.Table:
    """The table with its `id` column, made from the content when ids = "content" and it has none."""
    if ids != "content" or "id" in table.column_names:
        return table
    return table.append_column("id", content_ids(stem, start, table.column("text")))


def check_input_dir(input_dir: str, ids: str, storage, sample: int = 100) -> str | None:
    """Why a folder of documents cannot be deduplicated as it is (no Parquet file, a file without `text`, or
    without `id` when ids come from a column), read from the first `sample` files' footers, before any work
    starts; None when it looks right (every file is checked again by its task)."""
    found = storage.list(str(input_dir), suffix=".parquet")
    if not found:
        return f"no Parquet documents in {input_dir}"
    for e in found[:sample]:
        try:
            with storage.open_input(e.uri) as f:
                names = pq.ParquetFile(f).schema_arrow.names
        except Exception as err:  # noqa: BLE001 -- whatever the reader says, the file is not usable
            return f"{e.uri}: not a readable Parquet file ({err})"
        missing = missing_columns(names, ids)
        if missing:
            return (f"{e.uri} has no {missing[0]!r} column (it has {', '.join(names)})"
                    + (NO_ID_HINT if missing[0] == "id" else ""))
    return None


def is_current(sig_path: str, config: MinHashConfig, docs: str, rows: int, by_language: bool = False) -> bool:
    """True when `sig_path` exists, was made with `config` from the docs file whose fingerprint is `docs`,
    and has its `rows` rows."""
    if not files.exists(sig_path):
        return False
    f = files.parquet_file(sig_path)
    meta = f.schema_arrow.metadata or {}
    return (meta.get(FINGERPRINT_KEY, b"").decode() == signature_fingerprint(config, by_language)
            and meta.get(DOCS_KEY, b"").decode() == docs and f.metadata.num_rows == rows)


def compute_signatures(docs_path: str, sig_path: str, config: MinHashConfig, batch: int = 500,
                       by_language: bool = True, ids: str = "column") -> dict:
    """Signatures of one docs file, written atomically, unless a current one is there already. by_language:
    dedup per language (a `language` column, when the file has one, salts the keys; see signature_table).
    ids = "content": a file without an `id` column gets ids made from its content (`with_ids`)."""
    data = files.read_bytes(docs_path)  # read once: fingerprinted, then parsed from memory
    f = open_docs_file(docs_path, data, ids)
    docs = docs_fingerprint(data)
    # per language only matters with a document in another language than English: otherwise the signatures are
    # the same as without, and so is their fingerprint (signatures written elsewhere stay reusable)
    per_language = by_language and "language" in f.schema_arrow.names and any(
        language_salt(x) for x in set(f.read(columns=["language"]).column("language").to_pylist()))
    if is_current(sig_path, config, docs, f.metadata.num_rows, per_language):
        return {"documents": f.metadata.num_rows, "reused": True}
    hasher = MinHasher(config)
    parts = []
    stem, row = files.basename(docs_path)[: -len(".parquet")], 0
    columns = [c for c in ("id", "text") if c in f.schema_arrow.names] + (["language"] if per_language else [])
    for b in f.iter_batches(batch_size=batch, columns=columns):
        b = with_ids(pa.Table.from_batches([b]), stem, ids, row)
        row += b.num_rows
        parts.append(signature_table(b.column("id"), b.column("text"), batch=batch, hasher=hasher, docs=docs,
                                     languages=b.column("language") if per_language else None))
    table = pa.concat_tables(parts) if parts else signature_table([], [], config, docs=docs,
                                                                  languages=[] if per_language else None)
    # no dictionary: ids are unique and band keys random, so Parquet's attempt only costs (a third of the write)
    files.write_table(sig_path, table, use_dictionary=False)
    return {"documents": table.num_rows, "reused": False}
