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


@pytest.fixture(scope="module")
def ray_workers():
    """A local Ray instance with two 1-CPU worker slots, shared by one test module's runs (the
    engine's runs find it initialized and use it instead of starting their own)."""
    import ray

    from privbench.engine.ray_engine import worker_pythonpath

    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": worker_pythonpath()}},
    )
    yield
    ray.shutdown()
