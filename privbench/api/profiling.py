"""Where a task's time goes: wall and CPU seconds per named section, exclusive of nested ones.

A cell (or a designer fit) runs inside :func:`profiled`, which collects a :class:`Profile`; the
code it calls marks its parts with :func:`section` — ``read`` (batches from the image stores),
``encode`` (the encoder's forward pass), ``train`` (optimization steps), ``validate``
(per-epoch validation), ``checkpoint`` (epoch checkpoints written), ``metrics`` (caption and
detection metrics), ``java`` (the caption metrics' Java processes: PTB tokenizer, METEOR),
``hash`` (content digests), ``io`` (artifacts read from and written to the cache). Time inside a
section is charged to it and not to the section around it, so a profile's sections add up to
the task's wall time; what no section claims is ``other`` (building models, inference on test
splits, bookkeeping). Outside :func:`profiled` a section costs two clock reads and records
nothing.

CPU seconds are the process's (``time.process_time``: every thread, torch's intra-op pool
included), so CPU ÷ wall says how many cores a section kept busy. The result rows keep their
profile in ``execution["profile"]``; ``benchmarks/profile_run.py`` prints the table per stage
and cell kind (the README's profile).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

#: The sections, in the order a profile is printed (``other`` is the unclaimed rest).
SECTIONS = (
    "read",
    "encode",
    "train",
    "validate",
    "checkpoint",
    "metrics",
    "java",
    "hash",
    "io",
    "other",
)


@dataclass
class Profile:
    """Exclusive wall and CPU seconds per section of one task."""

    wall_s: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    total_wall_s: float = 0.0
    total_cpu_s: float = 0.0

    def add(self, name: str, wall: float, cpu: float) -> None:
        self.wall_s[name] = self.wall_s.get(name, 0.0) + wall
        self.cpu_s[name] = self.cpu_s.get(name, 0.0) + cpu

    def as_dict(self) -> dict[str, dict[str, float]]:
        """``{section: {"wall_s", "cpu_s"}}`` rounded to ms, ``other`` and ``total`` included —
        the JSON a result row keeps."""
        other_wall = max(self.total_wall_s - sum(self.wall_s.values()), 0.0)
        other_cpu = max(self.total_cpu_s - sum(self.cpu_s.values()), 0.0)
        walls = {**self.wall_s, "other": self.wall_s.get("other", 0.0) + other_wall}
        cpus = {**self.cpu_s, "other": self.cpu_s.get("other", 0.0) + other_cpu}
        result = {
            name: {"wall_s": round(walls[name], 3), "cpu_s": round(cpus.get(name, 0.0), 3)}
            for name in SECTIONS
            if name in walls
        }
        result["total"] = {
            "wall_s": round(self.total_wall_s, 3),
            "cpu_s": round(self.total_cpu_s, 3),
        }
        return result


class _Frame:
    __slots__ = ("name", "child_wall", "child_cpu")

    def __init__(self, name: str) -> None:
        self.name, self.child_wall, self.child_cpu = name, 0.0, 0.0


class _State(threading.local):
    def __init__(self) -> None:
        self.profile: Profile | None = None
        self.stack: list[_Frame] = []


_STATE = _State()


@contextmanager
def profiled() -> Iterator[Profile]:
    """Collect the sections of the code run inside into a fresh :class:`Profile` (nested calls
    collect into their own; the outer one resumes afterwards)."""
    outer_profile, outer_stack = _STATE.profile, _STATE.stack
    profile = Profile()
    _STATE.profile, _STATE.stack = profile, []
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield profile
    finally:
        profile.total_wall_s = time.perf_counter() - wall
        profile.total_cpu_s = time.process_time() - cpu
        _STATE.profile, _STATE.stack = outer_profile, outer_stack


@contextmanager
def section(name: str) -> Iterator[None]:
    """Charge the time spent inside to section ``name`` (minus nested sections' time)."""
    profile = _STATE.profile
    if profile is None:
        yield
        return
    frame = _Frame(name)
    stack = _STATE.stack
    stack.append(frame)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        stack.pop()
        profile.add(name, wall - frame.child_wall, cpu - frame.child_cpu)
        if stack:
            stack[-1].child_wall += wall
            stack[-1].child_cpu += cpu


__all__ = ["SECTIONS", "Profile", "profiled", "section"]
