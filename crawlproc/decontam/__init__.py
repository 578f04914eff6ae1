"""Decontamination: benchmark items kept out of the data, as plain functions (no Ray here:
pipelines.stages.decontaminate runs one task per file).

  text      the words compared: one language-neutral normalization for items and documents
  kernels   the compiled passes (numba): words of a batch, matching of a batch against an index
  index     which parts of an item are indexed, and the index (numpy arrays, shipped once to workers)
  match     documents -> what each one shares with which item (n-grams, coverage, spans)
  apply     one input file -> decontaminated/, decontaminated_removed/, decontam/cuts/
  config    the recipe's [decontaminate] section
"""
