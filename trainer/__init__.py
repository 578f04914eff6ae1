"""A small GPT trainer fed by crawlproc's Parquet token shards (nanoGPT-style, readable top to bottom).

presets.py (model sizes and architectures), model.py (the GPT), data.py (the token-shard loader, local or URI,
over tokenizer/tokenset.py), config.py (settings, flags, schedule), train.py (the loop and its CLI),
checkpoint.py, sample.py, export.py (Hugging Face GPT-2 / Llama / Qwen3), plot.py (loss curve PNG), evaluate.py
+ loadmodel.py + eval_run.py (benchmarks and bits per byte, as lm-eval-harness scores them), ablate.py (one
ablation unit and the table). No ray imports here: pipelines/commands/train.py wraps the same loop in Ray Train.
See README.md in this folder.
"""
