"""Ray core tasks: a run's fits and cells on every core and GPU of a machine or a cluster.

- **Instance.** ``address=None`` starts a private local instance sized to ``workers`` tasks
  (``workers × cpus_per_cell`` CPUs, every visible GPU) and stops it at the end; ``"auto"``,
  ``HOST:PORT`` or ``ray://HOST:PORT`` joins a running cluster (``ray start --head`` on one node,
  ``ray start --address`` on the others; docs/cluster.md) and leaves it running.
- **Resources.** Each task reserves its :class:`~privbench.engine.config.TaskResources`: CPUs
  (its torch threads) and a GPU share (``0.25`` packs four cells on one GPU).
- **Data.** The dataset is put into Ray's object store once; a worker fetches it with its first
  task and keeps it for the next ones (:class:`_ObjectStoreShared`), so it reaches every worker
  process once, on any node.
- **Artifacts.** Everything else (fitted weights, encoded measurements, shared clean models,
  epoch checkpoints) lives in the artifact cache folder, which every node must see at the same
  path: on a multi-node cluster it has to be a shared file system, checked at start-up by a
  probe file each node must read (a clear error otherwise).
- **Faults.** A task whose worker process dies is rerun up to ``max_retries`` times (Ray), and
  the rerun resumes from the cell's epoch checkpoints; a cell's own exception is not retried, it
  comes back as a failure report.
- **Output.** Worker stdout is not forwarded (``log_to_driver=False``): tasks report through a
  queue (:mod:`privbench.engine.events`) that :meth:`RayEngine.wait` drains into the driver's
  display; Ray's own worker logs stay in its session folder (``/tmp/ray/session_latest/logs``).
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from privbench.api.errors import ConfigError
from privbench.engine.base import Done, Engine, Shared
from privbench.engine.config import ExecutionConfig, TaskResources
from privbench.engine.events import QueueReporter, Reporter, replay

#: Seconds :meth:`RayEngine.wait` blocks before it drains the event queue again.
POLL_S = 0.25

#: In a worker process: the shared values it has fetched, by key (the newest one only).
_HELD: dict[str, Any] = {}


class _ObjectStoreShared(Shared):
    def __init__(self, key: str, ref: Any) -> None:
        self.key = key
        self._ref = [ref]  # nested in a list: Ray passes it as a reference, not resolved

    def get(self) -> Any:
        if self.key not in _HELD:
            import ray

            value = ray.get(self._ref[0])
            _HELD.clear()
            _HELD[self.key] = value
        return _HELD[self.key]


def _run_task(function, args, resources, queue, engine_name):
    """The body of every Ray task: resolve shared arguments, report through the queue."""
    resolved = tuple(arg.get() if isinstance(arg, Shared) else arg for arg in args)
    return function(*resolved, resources, QueueReporter(queue), engine_name)


def _read_probe(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def worker_pythonpath() -> str:
    """The driver's import path for the workers of a local instance, so that plugins imported
    from the driver's folders (a user's own encoder module, the tests' toy components) import
    in the workers too."""
    entries = [os.path.abspath(p) for p in sys.path if p and os.path.isdir(p)]
    return os.pathsep.join(dict.fromkeys(entries))


class RayEngine(Engine):
    name = "ray"

    def __init__(
        self,
        config: ExecutionConfig,
        workers: int,
        cache_root: Path,
        sink: Reporter,
        log: Callable[[str], None],
    ) -> None:
        self.config = config
        self.workers = workers
        self.cache_root = Path(cache_root)
        self._sink = sink
        self._log = log
        self._owns_instance = False
        self._tasks: dict[Any, tuple[int, str]] = {}
        self._next_id = 0
        self._remote = None
        self._queue = None
        #: (CPUs, GPUs) of the largest alive node, looked up at the first submission.
        self._largest_node: tuple[float, float] | None = None
        #: Seconds ``start`` took (Ray start-up, for the runner benchmark).
        self.startup_s = 0.0

    @property
    def description(self) -> str:
        import ray

        resources = ray.cluster_resources()
        nodes = len([node for node in ray.nodes() if node.get("Alive")])
        where = self.config.address or "a local Ray instance"
        gpus = f", {resources['GPU']:g} GPUs" if resources.get("GPU") else ""
        return f"Ray on {where}: {nodes} node(s), {resources.get('CPU', 0):g} CPUs{gpus}"

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        import ray
        from ray.util.queue import Queue

        started = time.perf_counter()
        if not ray.is_initialized():
            options: dict[str, Any] = dict(
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            if self.config.address is None:
                import torch

                cpus = self.workers * self.config.cpus_per_cell
                options.update(
                    address="local",  # a private instance, even where `ray start` runs one
                    num_cpus=cpus,
                    num_gpus=torch.cuda.device_count(),
                    runtime_env={"env_vars": {"PYTHONPATH": worker_pythonpath()}},
                )
            else:
                options["address"] = self.config.address
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as error:
                where = self.config.address or "a local instance"
                raise ConfigError(
                    f"Cannot start or join Ray ({where}): {error}. For a cluster, start it first "
                    "(`ray start --head`, docs/cluster.md) "
                    f"and pass --address auto or ray://HOST:PORT; or run with --workers 1."
                ) from None
            self._owns_instance = True
        self._remote = ray.remote(_run_task)
        self._queue = Queue(actor_options={"num_cpus": 0})
        self._check_shared_cache()
        self.startup_s = time.perf_counter() - started

    def close(self) -> None:
        import ray

        if not ray.is_initialized():
            return
        for ref in list(self._tasks):
            ray.cancel(ref, force=True)
        self._tasks.clear()
        if self._queue is not None:
            self._queue.shutdown()
            self._queue = None
        if self._owns_instance:
            ray.shutdown()
            self._owns_instance = False

    def _check_shared_cache(self) -> None:
        """On a cluster of several nodes, every node must see the artifact cache folder."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [node for node in ray.nodes() if node.get("Alive")]
        if len(nodes) <= 1:
            return
        self.cache_root.mkdir(parents=True, exist_ok=True)
        probe = self.cache_root / f".shared-probe-{secrets.token_hex(8)}"
        token = secrets.token_hex(16)
        probe.write_text(token)
        try:
            read = ray.remote(_read_probe)
            refs = {
                node["NodeManagerAddress"]: read.options(
                    num_cpus=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                ).remote(str(probe))
                for node in nodes
            }
            blind = [host for host, ref in refs.items() if ray.get(ref) != token]
        finally:
            probe.unlink(missing_ok=True)
        if blind:
            raise ConfigError(
                f"The artifact cache {str(self.cache_root)!r} is not shared with node(s) "
                f"{', '.join(blind)}: on a cluster, put it on a file system every node mounts at "
                "the same path (--cache-dir or $PRIVBENCH_CACHE; docs/cluster.md)."
            )

    # -- tasks ----------------------------------------------------------------------------------
    def share(self, value: Any, key: str) -> Shared:
        import ray

        return _ObjectStoreShared(key, ray.put(value))

    def check_device(self, device: str) -> None:
        """Ray assigns each task its GPUs (``CUDA_VISIBLE_DEVICES``), so a task sees them as
        ``cuda``: a numbered device cannot be honoured."""
        if device.startswith("cuda:"):
            raise ConfigError(
                f"--device {device} with Ray workers: Ray assigns each cell its GPU, which the "
                "cell sees as 'cuda'. Use --device cuda (restrict the GPUs with "
                "CUDA_VISIBLE_DEVICES), or --workers 1 to run on that device in this process."
            )

    def submit(
        self, function: Callable[..., Any], args: tuple, resources: TaskResources, name: str
    ) -> int:
        self._check_feasible(resources, name)
        options: dict[str, Any] = dict(
            num_cpus=resources.cpus,
            num_gpus=resources.gpus,
            max_retries=self.config.max_retries,
            retry_exceptions=False,
            name=name[:200],
        )
        if resources.gpus:
            options["max_calls"] = 0  # keep the worker (and its fetched data) between GPU tasks
        ref = self._remote.options(**options).remote(
            function, args, resources, self._queue, self.name
        )
        task_id = self._next_id
        self._next_id += 1
        self._tasks[ref] = (task_id, name)
        return task_id

    def _check_feasible(self, resources: TaskResources, name: str) -> None:
        """A task must fit on one node, or Ray would wait for it forever."""
        import ray

        if self._largest_node is None:  # looked up once: every task of the run is checked
            nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
            self._largest_node = (
                max((node.get("CPU", 0) for node in nodes), default=0),
                max((node.get("GPU", 0) for node in nodes), default=0),
            )
        cpus, gpus = self._largest_node
        if resources.gpus and gpus < resources.gpus:
            raise ConfigError(
                f"Task {name!r} asks for {resources.gpus:g} GPU(s), but no node of the Ray "
                f"cluster has that many (the most on one node: {gpus:g}). Use --device cpu, a "
                "smaller --gpus-per-cell, or join a cluster with GPUs (--address)."
            )
        if cpus < resources.cpus:
            raise ConfigError(
                f"Task {name!r} asks for {resources.cpus} CPUs, but no node of the Ray cluster "
                f"has that many (the most on one node: {cpus:g}). Lower --cpus-per-cell (or the "
                "spec's resources)."
            )

    def wait(self) -> list[Done]:
        import ray

        while self._tasks:
            ready, _ = ray.wait(list(self._tasks), num_returns=1, timeout=POLL_S)
            self._drain()
            if not ready:
                continue
            ready, _ = ray.wait(list(self._tasks), num_returns=len(self._tasks), timeout=0)
            return [self._collect(ref) for ref in ready]
        return []

    def _collect(self, ref: Any) -> Done:
        import ray

        task_id, name = self._tasks.pop(ref)
        try:
            return Done(task_id, name, ray.get(ref))
        except ray.exceptions.RayError as error:
            reason = str(error).strip().splitlines()
            return Done(
                task_id, name, error=f"{type(error).__name__}: {reason[-1] if reason else ''}"
            )

    def _drain(self) -> None:
        if self._queue is None:
            return
        try:
            events = self._queue.get_nowait_batch(self._queue.qsize())
        except Exception:
            return
        for event in events:
            replay(event, self._sink)

    @property
    def pending(self) -> int:
        return len(self._tasks)
