"""How a run executes: how many workers, where, and what each task may use.

A cell's numbers depend on how many torch threads computed it (PyTorch's CPU kernels split
reductions and matrix products by thread, so 1 and 2 threads differ in the last bits; measured
on this project's machine, docs/measurements.md). The threads of a task are therefore a fixed
part of the run's recipe, ``cpus_per_cell``, independent of how many workers run: ``--workers 1``
and ``--workers 2`` compute every cell with the same threads and store the same bits. The default
worker count is then the machine's cores (or GPU slices) divided by what one task takes
(:data:`DEFAULT_CPUS_PER_CELL` threads by default, the faster choice measured on the reference
machine: one in-process worker on 2 cores).
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from privbench.api.config import format_validation_error
from privbench.api.errors import ConfigError

#: Environment variable that sets the default worker count (the test suite sets it to 1).
WORKERS_ENV = "PRIVBENCH_WORKERS"

#: Torch threads per task by default. Measured (benchmarks/bench_runner.py, docs/cluster.md): on
#: the 2-core reference machine one worker with 2 threads ran the runner benchmark 1.3x faster
#: than two 1-thread workers (a cell took 1.79x less time with 2 threads, but 1.37x more when two
#: ran at once). A constant, not the core count, so that the default numbers are the same bits
#: on every machine, whatever its size.
DEFAULT_CPUS_PER_CELL = 2


class TaskResources(BaseModel):
    """What one task (a cell or a designer fit) reserves on its worker: CPU cores (= its torch
    threads) and a share of a GPU (``0.25`` packs four tasks on one GPU)."""

    model_config = ConfigDict(extra="forbid")

    cpus: int = Field(1, ge=1, le=1024, description="CPU cores = torch threads of the task")
    gpus: float = Field(0.0, ge=0.0, le=64.0, description="GPUs (a fraction packs several)")

    @field_validator("gpus")
    @classmethod
    def _whole_or_fraction(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError(f"more than one GPU must be a whole number, got {value}")
        return value


class ExecutionConfig(BaseModel):
    """The engine's settings (the CLI's ``--workers``, ``--address``, ``--cpus-per-cell``,
    ``--gpus-per-cell``; Python: ``privbench.run(execution=...)``)."""

    model_config = ConfigDict(extra="forbid")

    workers: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="parallel tasks; 1 runs in this process without Ray; default: from the "
        f"machine (or ${WORKERS_ENV})",
    )
    address: str | None = Field(
        None,
        description="join a running Ray cluster: 'auto' or 'ray://HOST:PORT' (default: start a "
        "local Ray instance)",
    )
    cpus_per_cell: int = Field(
        DEFAULT_CPUS_PER_CELL,
        ge=1,
        le=1024,
        description="CPU cores = torch threads of each cell and fit (part of the numbers)",
    )
    gpus_per_cell: float | None = Field(
        None,
        ge=0.0,
        le=64.0,
        description="GPU share of a cell on --device cuda (default 1; 0.25 packs four per GPU)",
    )
    max_retries: int = Field(
        3, ge=0, le=100, description="times Ray reruns a task whose worker process died"
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None or value == "auto" or value.startswith("ray://"):
            return value
        if ":" in value and not value.startswith(("http://", "https://")):
            return value  # HOST:PORT of a head node's GCS, as `ray start --address` prints
        raise ValueError(f"address must be 'auto', 'ray://HOST:PORT' or 'HOST:PORT', got {value!r}")

    @classmethod
    def of(cls, value: Any = None, **overrides: Any) -> ExecutionConfig:
        """An ExecutionConfig from None, a mapping or an instance, with CLI overrides applied
        (a bad value: ConfigError naming it)."""
        if isinstance(value, ExecutionConfig):
            raw = value.model_dump()
        elif value is None:
            raw = {}
        elif isinstance(value, dict):
            raw = dict(value)
        else:
            raise ConfigError(
                f"execution must be an ExecutionConfig or a mapping, got {type(value).__name__}."
            )
        raw.update({key: item for key, item in overrides.items() if item is not None})
        try:
            return cls(**raw)
        except ValidationError as error:
            raise ConfigError(format_validation_error(error, what="execution settings")) from None

    def cell_resources(self, device: str) -> TaskResources:
        """What one cell reserves on ``device``."""
        gpus = 0.0
        if device.startswith("cuda"):
            gpus = 1.0 if self.gpus_per_cell is None else self.gpus_per_cell
            if gpus == 0:
                raise ConfigError(
                    "--device cuda with --gpus-per-cell 0: a cell would get no GPU; give a "
                    "share such as 0.25, or use --device cpu."
                )
        return TaskResources(cpus=self.cpus_per_cell, gpus=gpus)

    def resolved_workers(self, device: str) -> int:
        """The worker count: given, else ``$PRIVBENCH_WORKERS``, else what the machine holds
        (cores ÷ cpus per cell, and on CUDA at most GPUs ÷ GPU share)."""
        if self.workers is not None:
            return self.workers
        if self.address is not None:
            return 0  # a cluster: as many as its resources admit (Ray schedules)
        env = os.environ.get(WORKERS_ENV)
        if env:
            try:
                workers = int(env)
                if workers < 1:
                    raise ValueError
            except ValueError:
                raise ConfigError(
                    f"${WORKERS_ENV}={env!r} is not a worker count; use a whole number ≥ 1."
                ) from None
            return workers
        return machine_workers(self.cell_resources(device))


def available_cpus() -> int:
    """CPU cores this process may use (its affinity mask, e.g. under SLURM or taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_workers(resources: TaskResources) -> int:
    """How many tasks of ``resources`` this machine runs at once."""
    workers = max(1, available_cpus() // resources.cpus)
    if resources.gpus > 0:
        import torch

        gpus = torch.cuda.device_count()
        workers = min(workers, max(1, int(gpus / resources.gpus)))
    return workers
