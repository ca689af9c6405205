"""The execution engine: where a run's designer fits and cells compute.

:mod:`~privbench.engine.config` (workers, address, resources per task),
:mod:`~privbench.engine.base` (the contract), :mod:`~privbench.engine.events` (what a running
task reports to the driver), :mod:`~privbench.engine.local` (``--workers 1``, in process) and
:mod:`~privbench.engine.ray_engine` (Ray core tasks). The engine knows nothing of benchmarks: it
runs functions; what a fit or a cell task does is :mod:`privbench.runs.tasks`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from privbench.api.evaluation import Progress
from privbench.engine.base import Done, Engine, Shared
from privbench.engine.config import ExecutionConfig, TaskResources
from privbench.engine.events import Reporter

__all__ = ["Done", "Engine", "ExecutionConfig", "Shared", "TaskResources", "open_engine"]


def open_engine(
    config: ExecutionConfig,
    *,
    device: str,
    cache_root: Path,
    progress: Progress,
    log: Callable[[str], None],
    sink: Reporter,
) -> Engine:
    """The engine ``config`` asks for: in process for one worker, else Ray (not started yet:
    use it as a context manager)."""
    workers = config.resolved_workers(device)
    if workers == 1 and config.address is None:
        from privbench.engine.local import InProcessEngine

        return InProcessEngine(progress, log)
    from privbench.engine.ray_engine import RayEngine

    return RayEngine(config, workers, cache_root, sink, log)
