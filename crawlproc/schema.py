"""The one definition of the document schema: every writer of documents (docs/, removed/, final/, classified/ ...)
uses it. (Work files and token shards have their own schemas, beside their writers.)

Columns follow FineWeb (text, id, dump, url, date, file_path, language, language_score, token_count) so that
`datasets.load_dataset("parquet", ...)` and `ray.data.read_parquet` read our files as they read FineWeb,
plus provenance (`warc_offset`) and, for removed documents, the stage that removed them and why.
"""

from __future__ import annotations

import pyarrow as pa

DOC_FIELDS = [
    pa.field("text", pa.large_string(), nullable=False),
    pa.field("id", pa.string(), nullable=False),  # WARC-Record-ID, e.g. <urn:uuid:...>
    pa.field("dump", pa.string()),  # snapshot name, e.g. CC-MAIN-2024-10
    pa.field("url", pa.string()),
    pa.field("date", pa.string()),  # WARC-Date, ISO 8601
    pa.field("file_path", pa.string()),  # the WARC file the record came from
    pa.field("language", pa.string()),
    pa.field("language_score", pa.float64()),
    pa.field("token_count", pa.int64()),  # whitespace words at extract time; the tokenize stage counts BPE
    pa.field("warc_offset", pa.int64()),  # byte offset of the record in its WARC file
]

DOC_SCHEMA = pa.schema(DOC_FIELDS)

# Removed documents keep every column, plus the stage that removed them and the filter's own reason.
REMOVED_SCHEMA = pa.schema(
    DOC_FIELDS
    + [
        pa.field("removed_by", pa.string(), nullable=False),
        pa.field("removed_reason", pa.string()),
    ]
)

# extracted/<stem>.parquet: the text extraction gave to the filters, for the documents whose stored text a
# filter changed (C4 drops lines): what `crawlproc refilter` starts from
EXTRACTED_SCHEMA = pa.schema([pa.field("id", pa.string(), nullable=False), pa.field("text", pa.large_string())])

DOC_COLUMNS = [f.name for f in DOC_FIELDS]


def docs_table(rows: list[dict], schema: pa.Schema = DOC_SCHEMA) -> pa.Table:
    """Build a table in `schema` from row dicts; missing optional columns become null."""
    columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(columns, schema=schema)


def extracted_table(rows: list[dict]) -> pa.Table:
    return docs_table(rows, EXTRACTED_SCHEMA)


def conform(table: pa.Table, schema: pa.Schema = DOC_SCHEMA) -> pa.Table:
    """Cast a table from another writer (e.g. a FineWeb shard) to our schema: add missing optional columns
    as nulls, drop unknown ones, and fail clearly if a required column is absent."""
    cols = []
    for f in schema:
        if f.name in table.column_names:
            cols.append(table.column(f.name).cast(f.type))
        elif f.nullable:
            cols.append(pa.nulls(table.num_rows, f.type))
        else:
            raise ValueError(f"input table lacks required column {f.name!r} (has {table.column_names})")
    return pa.Table.from_arrays(cols, schema=schema)
