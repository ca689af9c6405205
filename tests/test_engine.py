"""The execution engine on real Ray workers: same bits as one process, faults survived.

One local Ray instance (2 CPUs) serves the module; each run gets its own store and cache. The
fault tests inject real faults: a worker process that SIGKILLs itself mid-training, a driver
process killed with SIGKILL, an exception and a NaN in one cell.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support.isolated_runs import run_isolated

import privbench
from privbench.runs.store import ResultStore

TESTS = Path(__file__).parent


def _training_spec(toy, **attack_config) -> dict:
    """Fixed and learned toy cameras × a real trained utility task and trained attacks."""
    learned = {
        "name": "toy-learnable-blur",
        "designer": {
            "name": "end-to-end",
            "config": {"epochs": 2, "batch_size": 8, "task": "face-id"},
        },
    }
    return toy.toy_spec(
        encoders=["identity", {"name": "gaussian-blur", "config": {"sigma_px": 2}}, learned],
        tasks=[{"name": "face-vs-noface", "config": {"training": {"epochs": 2}}}],
        attacks=[
            "toy-attack",
            {"name": "toy-trained-attack", "config": {"epochs": 3, **attack_config}},
        ],
    )


def _metrics(report) -> list[tuple[str, dict]]:
    return [(row.cell_key, row.metrics) for row in report.results.itertuples()]


def test_two_workers_store_the_same_bits_as_one_process(toy, tmp_path, ray_workers):
    spec = _training_spec(toy)
    # One thread per cell, so that the 2-CPU instance runs two cells at once.
    one = run_isolated(spec, tmp_path, "one", workers=1, cpus_per_cell=1)
    two = run_isolated(spec, tmp_path, "two", workers=2, cpus_per_cell=1)
    assert one.failures == [] and two.failures == []
    assert len(one.results) == 9 and one.ran == 9 and two.ran == 9
    assert _metrics(two) == _metrics(one)  # same cells, same order, same floats
    assert [c.key for c in two.cells] == [c.key for c in one.cells]  # the spec's order
    assert (
        list(two.fitted) == list(one.fitted) == ["identity", "gaussian-blur", "toy-learnable-blur"]
    )
    assert two.engine.startswith("Ray") and one.engine.startswith("1 worker")
    executions = list(two.results["execution"])
    assert {e["engine"] for e in executions} == {"ray"} and {e["threads"] for e in executions} == {
        1
    }
    assert len({e["worker"] for e in executions}) >= 2  # the cells really ran in parallel workers
    assert {e["engine"] for e in one.results["execution"]} == {"local"}
    # A rerun on Ray skips every stored cell.
    again = run_isolated(spec, tmp_path, "two", workers=2, cpus_per_cell=1)
    assert again.ran == 0 and again.skipped == 9 and _metrics(again) == _metrics(two)


def test_a_worker_killed_mid_cell_is_retried_and_resumes_from_its_checkpoint(
    toy, tmp_path, ray_workers
):
    marker = tmp_path / "killed-once"
    crashing = toy.toy_spec(
        attacks=[
            {
                "name": "toy-trained-attack",
                "config": {"epochs": 4, "crash_marker": str(marker), "crash_after": 2},
            }
        ],
        tasks=["toy-utility"],
        encoders=["identity"],
    )
    report = run_isolated(crashing, tmp_path, "crash", workers=2, cpus_per_cell=1)
    assert marker.exists(), "the worker never killed itself: the test injected nothing"
    assert report.failures == []
    row = report.results[report.results["evaluation"] == "toy-trained-attack"].iloc[0]
    assert row["details"]["resumed_from_epoch"] >= 2  # the retry continued the killed training
    assert int(marker.read_text()) != row["details"]["pid"]  # ... in another worker process
    # Killed and resumed gives the numbers of an uninterrupted run: the same spec (the crash
    # setting is part of the evaluation's config) whose marker now exists, in a fresh cache.
    reference = crashing
    clean = run_isolated(reference, tmp_path, "clean", workers=1, cpus_per_cell=1)
    assert _metrics(clean) == _metrics(report)


def test_an_exception_or_a_nan_fails_its_cell_only(toy, tmp_path, ray_workers):
    spec = toy.toy_spec(
        attacks=[
            "toy-attack",
            {"name": "toy-trained-attack", "label": "raises", "config": {"fail": "exception"}},
            {"name": "toy-trained-attack", "label": "nan", "config": {"fail": "nan", "epochs": 1}},
        ]
    )
    report = run_isolated(spec, tmp_path, "faults", workers=2, cpus_per_cell=1)
    failed = dict(report.failures)
    assert len(failed) == 6  # 3 encoders × the two faulty attacks
    assert all("RuntimeError: injected failure" in r for n, r in failed.items() if "raises" in n)
    assert all("non-finite metric(s) accuracy=nan" in r for n, r in failed.items() if "nan" in n)
    assert report.ran == 6 and set(report.results["evaluation"]) == {"toy-utility", "toy-attack"}
    store = ResultStore(f"sqlite:///{tmp_path / 'faults' / 'results.db'}")
    failures = store.failures()
    assert len(failures) == 6 and set(failures["reason"]) == set(failed.values())
    store.close()


DRIVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from support import toy_components as toy
    import privbench
    privbench.run(toy.toy_spec(tasks=[{{"name": "toy-utility", "config": {{"sleep_s": 1.5}}}}]),
                  out_dir={out!r}, cache_dir={cache!r}, workers=2, cpus_per_cell=1,
                  render=False)
    """
)


def test_a_killed_driver_resumes_from_the_store(toy, tmp_path):
    """SIGKILL the driver (with its Ray instance) after the first rows are stored; the rerun
    keeps them, runs only the rest, and leaves exactly one row per cell."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    script = DRIVER.format(tests=str(TESTS), out=str(out), cache=str(cache))
    env = {**os.environ, "PRIVBENCH_WORKERS": ""}
    driver = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    database = out / "results.db"
    deadline = time.monotonic() + 240
    stored = 0
    while time.monotonic() < deadline and driver.poll() is None:
        if database.exists():
            store = ResultStore(f"sqlite:///{database}")
            stored = len(store)
            store.close()
            if stored >= 2:
                break
        time.sleep(0.2)
    assert driver.poll() is None, "the driver finished before it could be killed"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    store = ResultStore(f"sqlite:///{database}")
    before = set(store.dataframe()["cell_key"])
    store.close()
    assert 2 <= len(before) < 6
    report = privbench.run(
        toy.toy_spec(tasks=[{"name": "toy-utility", "config": {"sleep_s": 1.5}}]),
        out_dir=out,
        cache_dir=cache,
        workers=1,
        report=True,
        render=False,
    )
    assert report.skipped == len(before) and report.ran == 6 - len(before)
    keys = list(report.results["cell_key"])
    assert len(keys) == len(set(keys)) == 6 and before <= set(keys)


def test_execution_settings_are_validated_with_clear_errors(monkeypatch):
    from privbench.api.errors import ConfigError
    from privbench.engine import ExecutionConfig
    from privbench.engine.config import machine_workers
    from privbench.runs.spec import load_spec

    with pytest.raises(ConfigError, match="address"):
        ExecutionConfig.of(None, address="http://head:8265")
    with pytest.raises(ConfigError, match="workers"):
        ExecutionConfig.of({"workers": 0})
    with pytest.raises(ConfigError, match="gpus-per-cell 0"):
        ExecutionConfig(gpus_per_cell=0).cell_resources("cuda")
    monkeypatch.setenv("PRIVBENCH_WORKERS", "many")
    with pytest.raises(ConfigError, match="PRIVBENCH_WORKERS"):
        ExecutionConfig().resolved_workers("cpu")
    monkeypatch.delenv("PRIVBENCH_WORKERS")
    config = ExecutionConfig(cpus_per_cell=1)
    assert config.resolved_workers("cpu") == machine_workers(config.cell_resources("cpu")) >= 1
    assert ExecutionConfig(workers=3).resolved_workers("cpu") == 3
    assert ExecutionConfig(gpus_per_cell=0.25).cell_resources("cuda").gpus == 0.25
    assert ExecutionConfig().cell_resources("cpu").gpus == 0.0
    with pytest.raises(ConfigError, match="whole number"):
        load_spec(
            {
                "name": "x",
                "encoders": ["identity"],
                "tasks": [{"name": "face-vs-noface", "resources": {"gpus": 1.5}}],
            }
        )


def test_ray_cannot_honour_a_numbered_gpu(tmp_path):
    from privbench.api.errors import ConfigError
    from privbench.engine import ExecutionConfig
    from privbench.engine.events import Reporter
    from privbench.engine.ray_engine import RayEngine

    engine = RayEngine(ExecutionConfig(workers=2), 2, tmp_path, Reporter(), print)
    with pytest.raises(ConfigError, match="--device cuda "):
        engine.check_device("cuda:1")
    engine.check_device("cuda")
    engine.check_device("cpu")


def test_spec_resources_reach_the_task_and_gpu_shares_only_on_cuda(toy, tmp_path):
    import torch

    from privbench.api.cache import ArtifactCache
    from privbench.engine import ExecutionConfig
    from privbench.runs.runner import Runner
    from privbench.runs.spec import resolve_spec

    spec = resolve_spec(
        toy.toy_spec(attacks=[{"name": "toy-attack", "resources": {"cpus": 2, "gpus": 1}}])
    )
    runner = Runner(
        spec,
        store=None,
        device=torch.device("cpu"),
        cache=ArtifactCache(tmp_path),
        execution=ExecutionConfig(cpus_per_cell=1),
    )
    attack, task = spec.attacks[0], spec.tasks[0]
    assert runner.task_resources(attack).model_dump() == {"cpus": 2, "gpus": 0.0}
    assert runner.task_resources(task).model_dump() == {"cpus": 1, "gpus": 0.0}


def test_the_driver_display_shows_running_cells_with_their_worker_and_prefixed_logs():
    """Events as a Ray worker queues them, replayed into the CLI's rich display."""
    import io

    from rich.console import Console

    from privbench.engine.events import replay
    from privbench.runs.progress import RichProgressFactory, RunDisplay

    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    progress = RichProgressFactory(console=console)
    lines: list[str] = []
    display = RunDisplay(progress, lines.append)
    display.expect("k1", "identity × face-id (seed 0)")
    with progress:
        replay(("started", "k1", "4242@node-a"), display)
        replay(("bar", "k1", "face-id small-cnn", 3, 6, "loss=0.5"), display)
        replay(("log", "k1", "resumed from checkpoint after epoch 2"), display)
        tasks = progress._progress.tasks
        assert [t.description for t in tasks] == ["identity × face-id (seed 0) [4242@node-a]"]
        assert tasks[0].fields["info"] == "step=face-id small-cnn 3/6 loss=0.5"
        assert display.worker("k1") == "4242@node-a"
        display.finished("k1")
        assert progress._progress.tasks == []
    assert lines == ["[identity × face-id (seed 0)] resumed from checkpoint after epoch 2"]
