"""What a running task tells the driver: that it started (on which worker), its log lines and
its training progress.

In the driver's own process (``--workers 1``) a task reports straight to the run's progress bars
and log. In a Ray worker it reports through a queue that the driver drains between results, so
one live display in the driver shows every running cell with its worker and its current
training bar, and log lines arrive whole and prefixed with their cell instead of as interleaved
worker output.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

from privbench.api.evaluation import Progress, ProgressBar

#: Seconds between two forwarded updates of one training bar (the last update always goes).
FORWARD_INTERVAL_S = 0.5


def worker_id() -> str:
    """``pid@host`` of this process, as rows record who computed them."""
    return f"{os.getpid()}@{socket.gethostname()}"


class Reporter:
    """A task's channel to the driver (see module docstring). The base reports nothing."""

    def started(self, task: str, worker: str) -> None:
        """The task began on ``worker``."""

    def log(self, task: str, message: str) -> None:
        """One log line of the task."""

    def bar(self, task: str, description: str, completed: int, total: int, info: str) -> None:
        """The task's current training bar."""

    def progress(self, task: str) -> Progress:
        """Progress bars for the task's training loops, reported through :meth:`bar`."""
        return _ForwardingProgress(self, task)

    def logger(self, task: str) -> Callable[[str], None]:
        return lambda message: self.log(task, message)


class DirectReporter(Reporter):
    """In the driver's process: the run's own progress bars and log (today's display)."""

    def __init__(self, progress: Progress, log: Callable[[str], None]) -> None:
        self._progress = progress
        self._log = log

    def log(self, task: str, message: str) -> None:
        self._log(message)

    def progress(self, task: str) -> Progress:
        return self._progress


class QueueReporter(Reporter):
    """In a Ray worker: events as tuples on a ``ray.util.queue.Queue`` the driver drains."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def _put(self, *event: Any) -> None:
        try:
            self._queue.put_nowait(event)
        except Exception:  # a full or gone queue never fails the cell: the display is best-effort
            pass

    def started(self, task: str, worker: str) -> None:
        self._put("started", task, worker)

    def log(self, task: str, message: str) -> None:
        self._put("log", task, message)

    def bar(self, task: str, description: str, completed: int, total: int, info: str) -> None:
        self._put("bar", task, description, completed, total, info)


def replay(event: tuple, sink: Reporter) -> None:
    """Deliver one queued event to the driver's ``sink``."""
    kind, *arguments = event
    if kind == "started":
        sink.started(*arguments)
    elif kind == "log":
        sink.log(*arguments)
    elif kind == "bar":
        sink.bar(*arguments)


class _ForwardingProgress(Progress):
    def __init__(self, reporter: Reporter, task: str) -> None:
        self._reporter = reporter
        self._task = task

    def __call__(self, total: int, description: str) -> ProgressBar:
        return _ForwardingBar(self._reporter, self._task, total, description)


class _ForwardingBar(ProgressBar):
    def __init__(self, reporter: Reporter, task: str, total: int, description: str) -> None:
        self._reporter, self._task = reporter, task
        self._total, self._description = total, description
        self._completed = 0
        self._info = ""
        self._sent = 0.0
        self._send()

    def _send(self) -> None:
        self._sent = time.monotonic()
        self._reporter.bar(self._task, self._description, self._completed, self._total, self._info)

    def update(self, advance: int = 1, **info: Any) -> None:
        self._completed += advance
        if info:
            self._info = "  ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()
            )
        if time.monotonic() - self._sent >= FORWARD_INTERVAL_S:
            self._send()

    def close(self) -> None:
        self._send()
