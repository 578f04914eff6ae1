"""Small real WARC files for tests: gzip per record as Common Crawl writes them, with the real article texts
of tests/data/dedup/articles.jsonl.gz (ScrapingHub benchmark, MIT) as HTML pages."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path

DATA = Path(__file__).parent / "data"


def articles() -> list[dict]:
    with gzip.open(DATA / "dedup" / "articles.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def page(text: str, title: str = "Article") -> bytes:
    paras = "".join(f"<p>{p}</p>" for p in text.split("\n") if p.strip())
    return (f"<!doctype html><html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
            f"{paras}</article></body></html>").encode()


def response_record(url: str, html: bytes, record_id: str | None, date: str = "2024-02-20T10:00:00Z") -> bytes:
    http = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            + f"Content-Length: {len(html)}\r\n\r\n".encode() + html)
    head = ["WARC/1.0", "WARC-Type: response", f"WARC-Target-URI: {url}", f"WARC-Date: {date}",
            "Content-Type: application/http; msgtype=response", f"Content-Length: {len(http)}"]
    if record_id is not None:
        head.insert(2, f"WARC-Record-ID: {record_id}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + http + b"\r\n\r\n"


def write_warc(path: Path, docs: list[tuple[str, str]], with_ids: bool = True, seed: int = 0) -> list[str]:
    """Write (url, text) pages as one gzip member per record; returns the record ids (None-free only when
    with_ids). Ids are derived from the seed and position, so equal arguments give equal bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = []
    with open(path, "wb") as f:
        for i, (url, text) in enumerate(docs):
            rid = f"<urn:uuid:{uuid.UUID(int=(seed << 32) + i)}>" if with_ids else None
            ids.append(rid)
            f.write(gzip.compress(response_record(url, page(text, f"Article {i}"), rid), mtime=0))
    return ids
