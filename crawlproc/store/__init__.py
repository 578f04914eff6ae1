"""Where things are and what is done: storage back ends (storage), every path of a run (layout), one command at a
time (lock), what identifies an input or a recipe (fingerprint), root causes of failed units (failure), and which
inputs still need the extract stage (inputs)."""
