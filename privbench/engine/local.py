"""``--workers 1``: tasks run one at a time in the driver's own process, in submission order.

No Ray start-up, the driver's progress bars and log directly, and a debugger or profiler sees the
task's code: the path for debugging, tests and machines where one task is all there is room for.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from privbench.api.evaluation import Progress
from privbench.engine.base import Done, Engine, Shared
from privbench.engine.config import TaskResources
from privbench.engine.events import DirectReporter


class _InProcess(Shared):
    def __init__(self, value: Any) -> None:
        self._value = value

    def get(self) -> Any:
        return self._value


class InProcessEngine(Engine):
    name = "local"

    def __init__(self, progress: Progress, log: Callable[[str], None]) -> None:
        self._reporter = DirectReporter(progress, log)
        self._queue: deque[tuple[int, str, Callable[..., Any], tuple, TaskResources]] = deque()
        self._next_id = 0

    @property
    def description(self) -> str:
        return "1 worker (this process)"

    def share(self, value: Any, key: str) -> Shared:
        return _InProcess(value)

    def submit(
        self, function: Callable[..., Any], args: tuple, resources: TaskResources, name: str
    ) -> int:
        task_id = self._next_id
        self._next_id += 1
        self._queue.append((task_id, name, function, args, resources))
        return task_id

    def wait(self) -> list[Done]:
        if not self._queue:
            return []
        task_id, name, function, args, resources = self._queue.popleft()
        resolved = tuple(arg.get() if isinstance(arg, Shared) else arg for arg in args)
        return [Done(task_id, name, function(*resolved, resources, self._reporter, self.name))]

    @property
    def pending(self) -> int:
        return len(self._queue)
