"""Progress reporting for runs: silent by default, rich bars in the CLI.

The runner and every training loop report through :class:`~privbench.api.evaluation.Progress`;
:class:`ProgressFactory` adds run stages (dataset, designer fits, cells) to it.
"""

from __future__ import annotations

from typing import Any

from privbench.api.evaluation import Progress, ProgressBar
from privbench.engine.events import Reporter


class ProgressFactory(Progress):
    """Silent progress (the base); the CLI passes a rich-backed one."""

    def stage(self, description: str, total: int) -> ProgressBar:
        return self(total, description)


class RichProgressFactory(ProgressFactory):
    """Progress bars on a rich console: one per stage, one per training run (transient)."""

    def __init__(self, console=None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._progress = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
        )
        self._started = False

    @property
    def console(self):
        """The rich console the bars draw on (print through it to keep the bars intact)."""
        return self._progress.console

    def __enter__(self):
        self._progress.start()
        self._started = True
        return self

    def __exit__(self, *exc):
        self._progress.stop()
        self._started = False

    def __call__(self, total: int, description: str) -> ProgressBar:
        return _RichBar(self._progress, total, description, transient=True)

    def stage(self, description: str, total: int) -> ProgressBar:
        return _RichBar(self._progress, total, description, transient=False)


class _RichBar(ProgressBar):
    def __init__(self, progress, total: int, description: str, transient: bool) -> None:
        self._progress = progress
        self._transient = transient
        self._task = progress.add_task(description, total=max(total, 0), info="")

    def update(self, advance: int = 1, **info: Any) -> None:
        text = "  ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()
        )
        self._progress.update(self._task, advance=advance, info=text)

    def close(self) -> None:
        if self._transient:
            self._progress.remove_task(self._task)


class LineProgressFactory(ProgressFactory):
    """Progress for a log file, a pipe or a batch job (no terminal): each run stage prints a
    line when it starts, on every step at most every ``interval_s`` seconds (and its last), with
    the count, elapsed time and an estimate of the time left; training bars stay silent (their
    epochs show in the stage's cells)."""

    def __init__(self, print_line, interval_s: float = 30.0, clock=None) -> None:
        import time

        self._print = print_line
        self._interval_s = interval_s
        self._clock = clock or time.monotonic

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def stage(self, description: str, total: int) -> ProgressBar:
        return _LineBar(self._print, description, total, self._interval_s, self._clock)


class _LineBar(ProgressBar):
    def __init__(self, print_line, description: str, total: int, interval_s: float, clock) -> None:
        self._print, self._description, self._total = print_line, description, max(total, 0)
        self._interval_s, self._clock = interval_s, clock
        self._done = 0
        self._started = clock()
        self._last_print = self._started
        if self._total:
            self._print(f"{description}: 0/{self._total}")

    def update(self, advance: int = 1, **info: Any) -> None:
        self._done += advance
        now = self._clock()
        if advance and (self._done >= self._total or now - self._last_print >= self._interval_s):
            self._last_print = now
            self._print(self.line(now, info))

    def line(self, now: float, info: dict[str, Any]) -> str:
        elapsed = now - self._started
        text = f"{self._description}: {self._done}/{self._total}, {_clock_text(elapsed)} elapsed"
        if 0 < self._done < self._total:
            left = elapsed / self._done * (self._total - self._done)
            text += f", about {_clock_text(left)} left"
        extra = "  ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()
        )
        return f"{text}  {extra}".rstrip()


def _clock_text(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class RunDisplay(Reporter):
    """The driver's live view of tasks running in workers: one row per running cell or fit,
    with its worker and its current training bar; log lines prefixed with their task."""

    def __init__(self, progress: ProgressFactory, log) -> None:
        self._progress = progress
        self._log = log
        self._names: dict[str, str] = {}
        self._rows: dict[str, ProgressBar] = {}
        self._workers: dict[str, str] = {}

    def expect(self, task: str, name: str) -> None:
        """``task`` (a cell key, ``fit:KEY``) will run under ``name``."""
        self._names[task] = name

    def started(self, task: str, worker: str) -> None:
        self.finished(task)
        self._workers[task] = worker
        self._rows[task] = self._progress(1, f"{self._names.get(task, task)} [{worker}]")

    def bar(self, task: str, description: str, completed: int, total: int, info: str) -> None:
        row = self._rows.get(task)
        if row is not None:
            row.update(0, step=f"{description} {completed}/{total} {info}".rstrip())

    def log(self, task: str, message: str) -> None:
        self._log(f"[{self._names.get(task, task)}] {message}")

    def finished(self, task: str) -> None:
        row = self._rows.pop(task, None)
        if row is not None:
            row.close()

    def worker(self, task: str) -> str | None:
        return self._workers.get(task)
