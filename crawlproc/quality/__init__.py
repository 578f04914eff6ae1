"""Quality filters of the FineWeb recipe, one module each: gopher_repetition, gopher_quality, c4 and
fineweb_quality, with datatrove 0.10.1's semantics (same checks, same order, same reasons) and the recipe's
thresholds.

Each is a `Filter` (filter.py) over a `Doc` (crawlproc/doc.py) with its own recipe section and check table;
crawlproc/extract/registry.py lists them in pipeline order. Words are split by one fast regex that approximates
datatrove's spaCy tokenizer (words.py), once per text and shared by the filters that need them.
"""
