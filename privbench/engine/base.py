"""The engine contract: run task functions with reserved resources and hand back what finished.

An engine runs task functions (a run's are in :mod:`privbench.runs.tasks`) —
``function(*args, resources, reporter, engine_name)`` — and returns their reports as they
finish. The driver (the runner's task graph) decides what to submit next from what came back;
it is the only writer of the store. Two engines:
:class:`~privbench.engine.local.InProcessEngine` (``--workers 1``: one task at a time in the
driver's process, no Ray start-up) and :class:`~privbench.engine.ray_engine.RayEngine` (Ray
core tasks on a local instance or a cluster). Both run the same functions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from privbench.engine.config import TaskResources


class Shared(ABC):
    """A value every task reads (the dataset): it reaches each worker once."""

    @abstractmethod
    def get(self) -> Any:
        """The value, in the process that runs the task."""


@dataclass
class Done:
    """A finished task: the report its function returned, or why it could not run at all (its
    worker died more often than the retries allow)."""

    task_id: int
    name: str
    value: Any = None
    error: str | None = None


class Engine(ABC):
    """Runs task functions (see module docstring)."""

    #: Recorded in each row's ``execution`` (``local`` or ``ray``).
    name: str = ""

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:  # noqa: B027 - optional hook: in process there is nothing to start
        """Acquire the workers (a no-op in process)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the workers."""

    @property
    def description(self) -> str:
        """One line for the run's log: what executes the tasks."""
        return self.name

    def check_device(self, device: str) -> None:  # noqa: B027 - optional check
        """Raise ConfigError where this engine cannot run tasks on ``device``."""

    @abstractmethod
    def share(self, value: Any, key: str) -> Shared:
        """``value`` as a :class:`Shared` handle tasks receive as an argument."""

    @abstractmethod
    def submit(
        self, function: Callable[..., Any], args: tuple, resources: TaskResources, name: str
    ) -> int:
        """Queue ``function(*args, resources, reporter, engine_name)`` (Shared args resolved in
        the worker); returns the task's id."""

    @abstractmethod
    def wait(self) -> list[Done]:
        """Block until at least one submitted task finished; its reports (empty: nothing
        pending)."""

    @property
    @abstractmethod
    def pending(self) -> int:
        """Tasks submitted and not yet returned by :meth:`wait`."""
