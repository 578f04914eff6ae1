"""Shared fixtures. Tests read fixtures from tests/data only, never from outside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from raycluster import head_factory, short_tmp  # noqa: F401  (fixtures for tests that start clusters)
from s3 import MotoServer, export_session_env, free_port

# Property tests draw the same examples on every run, so that a CI verdict is about the change, not about the
# draw: a fresh draw can fail on an edge case the change never touched. HYPOTHESIS_PROFILE=explore draws new
# ones (run it after changing code a property covers, with --hypothesis-seed to vary them) and pin what it finds
# with @example.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

DATA = Path(__file__).parent / "data"
# Before any Ray worker or subprocess exists: every process of the session finds the test S3 server.
S3_PORT = free_port()
export_session_env(S3_PORT)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray instance for the whole test session (2 CPUs, small object store)."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not ray.is_initialized():
        ray.init(
            address="local",  # a private instance, whatever cluster Ray's temp dir names
            num_cpus=2,
            object_store_memory=256 * 1024 * 1024,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a test module: on a busy shared CPU, two spinning threads are ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto) on 127.0.0.1, which AWS_ENDPOINT_URL points to."""
    server = MotoServer(S3_PORT).start()
    yield server
    server.stop()
