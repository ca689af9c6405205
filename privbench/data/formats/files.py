"""Checked access to dataset files: missing-file errors, annotation lines, JSON.

A missing file or a malformed annotation line is a :class:`~privbench.api.errors.DataError` that
names the file (and line) and what was expected, so a user can fix the dataset folder.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from privbench.api.errors import DataError

#: How many missing or bad paths an error message names before summarising the rest.
EXAMPLES_IN_MESSAGES = 5


class AnnotationError(DataError):
    """A malformed line (or JSON entry) of an annotation file; the message names file and line."""

    def __init__(
        self,
        path: str | Path,
        line: int | None,
        problem: str,
        expected: str = "",
        text: str | None = None,
    ):
        self.path = Path(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        message = f"{where}: {problem}."
        if text is not None:
            message += f" The line reads {text.rstrip()!r}."
        if expected:
            message += f" Expected {expected}."
        message += " Fix or restore that file (the dataset's published copy has this exact syntax)."
        super().__init__(message)


def missing_files_error(
    missing: Sequence[str | Path], total: int, what: str, root: str | Path, dataset: str
) -> DataError:
    shown = ", ".join(str(p) for p in list(missing)[:EXAMPLES_IN_MESSAGES])
    more = (
        f" and {len(missing) - EXAMPLES_IN_MESSAGES} more"
        if len(missing) > EXAMPLES_IN_MESSAGES
        else ""
    )
    return DataError(
        f"{len(missing)} of the {total} {what} are missing under {str(root)!r}: {shown}{more}. "
        f"Point the path at the complete {dataset} folder (run `privbench data check {dataset} "
        f"PATH` "
        f"to list everything that is missing) or lower the counts that select images."
    )


def require_files(paths: Sequence[Path], what: str, root: str | Path, dataset: str) -> None:
    """Raise :func:`missing_files_error` when any of ``paths`` (the ``what`` of ``dataset`` under
    ``root``) is missing."""
    _, missing = stat_files(paths)
    if missing:
        raise missing_files_error(missing, len(paths), what, root, dataset)


def require_path(path: Path, what: str, dataset: str, hint: str = "") -> Path:
    """``path`` if it exists, else a DataError naming it, what it should hold and the dataset."""
    if not path.exists():
        raise DataError(
            f"{dataset}: {what} {str(path)!r} does not exist.{(' ' + hint) if hint else ''} "
            f"See `privbench data check {dataset} PATH` and the expected layout in the README."
        )
    return path


def stat_files(paths: Sequence[Path]) -> tuple[list[os.stat_result | None], list[Path]]:
    """``os.stat`` of every path (None where missing) and the list of missing paths."""
    stats: list[os.stat_result | None] = []
    missing: list[Path] = []
    for path in paths:
        try:
            stats.append(path.stat())
        except FileNotFoundError:
            stats.append(None)
            missing.append(path)
        except NotADirectoryError:
            stats.append(None)
            missing.append(path)
    return stats, missing


def read_lines(path: Path, what: str) -> list[str]:
    """Lines of a text annotation file (newline stripped); a missing or undecodable file is a
    DataError."""
    if not path.is_file():
        raise DataError(f"{what} {str(path)!r} does not exist.")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return path.read_text(encoding="latin-1").splitlines()


def parse_numbers(
    path: Path, line_no: int, text: str, count: int, expected: str, integers: bool = False
) -> list[float]:
    """The ``count`` whitespace-separated numbers of one annotation line, or an AnnotationError."""
    fields = text.split()
    if len(fields) != count:
        raise AnnotationError(
            path, line_no, f"has {len(fields)} fields instead of {count}", expected, text
        )
    try:
        values = [int(f) if integers else float(f) for f in fields]
    except ValueError:
        raise AnnotationError(
            path, line_no, "holds a field that is not a number", expected, text
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise AnnotationError(path, line_no, "holds a non-finite number", expected, text)
    return values


def read_json(path: str | Path, what: str) -> Any:
    """Parse a JSON file; syntax errors become an AnnotationError with the line number."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {str(path)!r} does not exist.")
    try:
        with open(path, "rb") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise AnnotationError(
            path, error.lineno, f"invalid JSON ({error.msg}, column {error.colno})", f"a {what}"
        ) from None
    except UnicodeDecodeError as error:
        raise AnnotationError(path, None, f"not UTF-8 text ({error.reason})", f"a {what}") from None
