"""Bytes of a WARC file -> HTML records, bounded: the gzip member stream (stream), the record reader (reader), the
HTTP body (httpbody) and its character set (charset)."""
