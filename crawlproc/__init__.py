"""crawlproc: the processing core, as plain functions and small classes over a document, a file, a partition or a
run folder; each stage's units of work live here and knows nothing of Ray.

Rooms: store/ (where things are and what is done), crawl/ (getting WARC bytes), warc/ (bytes to records),
extract/ (the extract stage's steps), quality/ (the filters), dedup/ (MinHash, components, PII), classify/
(model scores), and at the top the vocabulary every room uses: recipe, config, doc, schema, evalsuite.
This package never imports ray: orchestration lives in `pipelines/`.
"""

__version__ = "0.1.0"
