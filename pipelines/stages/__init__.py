"""The stages, one module each, orchestration only: extract, dedup, classify, tokenize, mix, export, and `run`
(a snapshot from its listing) with the chain of stages after extraction (chain)."""
