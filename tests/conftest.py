import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))
# Runs execute in the test's own process unless a test asks for Ray workers (tests/test_engine.py).
os.environ.setdefault("PRIVBENCH_WORKERS", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own artifact cache unless it sets one explicitly."""
    monkeypatch.setenv("PRIVBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def toy():
    from support import toy_components

    return toy_components
