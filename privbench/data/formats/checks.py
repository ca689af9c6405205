"""The :class:`CheckReport` printed by ``privbench data check``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from privbench.data.formats.files import stat_files


@dataclass
class CheckReport:
    """What ``privbench data check`` found in a dataset folder."""

    dataset: str
    root: Path
    found: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    checked_files: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing

    def add_found(self, *relative: str) -> None:
        """List the paths (relative to the root) that exist, folders with a trailing ``/``."""
        for name in relative:
            path = self.root / name
            if path.exists():
                self.found.append(name + ("/" if path.is_dir() else ""))

    def add_missing(self, paths: Iterable[Path]) -> None:
        for path in paths:
            try:
                self.missing.append(str(Path(path).relative_to(self.root)))
            except ValueError:
                self.missing.append(str(path))

    def check_files(self, paths: Sequence[Path]) -> None:
        """Count ``paths`` as the files the adapter would read and record those missing."""
        _, missing = stat_files(paths)
        self.checked_files = len(paths)
        self.add_missing(missing)

    def render(self, max_missing: int = 20) -> str:
        lines = [f"{self.dataset} at {self.root}"]
        if self.found:
            lines.append("found: " + ", ".join(self.found))
        if self.counts:
            columns = sorted(
                {key for values in self.counts.values() for key in values},
                key=lambda k: (k != "images", k),
            )
            first = max(len("split"), *(len(split) for split in self.counts)) + 2
            widths = [
                max(len(c), *(len(str(v.get(c, ""))) for v in self.counts.values())) + 3
                for c in columns
            ]
            lines.append(
                "split".ljust(first) + "".join(c.rjust(w) for c, w in zip(columns, widths))
            )
            for split, values in self.counts.items():
                lines.append(
                    split.ljust(first)
                    + "".join(str(values.get(c, "")).rjust(w) for c, w in zip(columns, widths))
                )
        lines.extend(self.notes)
        if self.missing:
            lines.append(
                f"MISSING: {len(self.missing)} of {self.checked_files} files the adapter would "
                f"read:"
            )
            lines.extend(f"  {path}" for path in self.missing[:max_missing])
            if len(self.missing) > max_missing:
                lines.append(f"  ... and {len(self.missing) - max_missing} more")
        else:
            lines.append(f"all {self.checked_files} files the adapter would read are present")
        return "\n".join(lines)
