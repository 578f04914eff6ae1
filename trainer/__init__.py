"""A small GPT trainer fed by crawlproc's Parquet token shards (nanoGPT-style, readable top to bottom).

presets.py (model sizes), model.py (the GPT), shards.py + data.py (the token-shard loader, local or URI), config.py
(settings, flags, schedule), train.py (the loop and its CLI), checkpoint.py, sample.py, export.py (Hugging
Face GPT-2), plot.py (loss curve PNG). No ray imports here: pipelines/commands/train.py wraps the same loop
in Ray Train. See README.md in this folder.
"""
