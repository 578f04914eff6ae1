"""The extract stage's work, without Ray: its units (units: a WARC by path or URI, a file of a listing), one WARC
file through the steps (file), the steps as one list (steps), which steps exist in what order (registry), and
each step that is not a quality filter: the URL filter (urlfilter), the language pre-check (precheck), HTML to
text (html; accelerate and attrxpath make trafilatura faster with the same output), language ID (language); one CPU-time budget per document (budget)."""
