"""Starting Ray: a local instance by default, an existing cluster with --address or RAY_ADDRESS."""

from __future__ import annotations

import logging
import os

import ray

from crawlproc.recipe import Recipe


def init_ray(address: str | None, recipe: Recipe, num_cpus: int | None = None) -> None:
    """Connect to `address` (or RAY_ADDRESS) if given, else start a local Ray sized for this machine."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    common = dict(include_dashboard=False, log_to_driver=True, logging_level=logging.WARNING)
    if address:
        import crawlproc
        import pipelines
        import tokenizer
        import trainer

        # Ship this checkout's code so cluster workers run the same version as the driver; third-party
        # dependencies must already be installed on the cluster image (pip install crawlproc).
        ray.init(address=address, runtime_env={"py_modules": [crawlproc, pipelines, tokenizer, trainer]}, **common)
    else:
        ray.init(
            num_cpus=num_cpus or os.cpu_count(),
            object_store_memory=recipe.ray.object_store_memory_mb * 1024 * 1024,
            **common,
        )
