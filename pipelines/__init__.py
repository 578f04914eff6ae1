"""Ray orchestration: stages, recipes, run state, the CLI and the report. Uses crawlproc, tokenizer, trainer."""
