"""User-facing errors.

Every error privbench raises on bad input is a :class:`PrivbenchError` whose message is one
paragraph naming the bad thing and what would be accepted. The CLI prints the message (no
traceback) and exits with a non-zero code.
"""

from __future__ import annotations


class PrivbenchError(Exception):
    """Base class of all errors caused by user input or environment, not by a privbench bug."""

    exit_code = 2


class UnknownNameError(PrivbenchError, KeyError):
    """A component name (encoder, task, attack, benchmark, ...) that no registry knows."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(PrivbenchError, ValueError):
    """A configuration or benchmark spec field has an invalid value."""


class InputError(PrivbenchError, ValueError):
    """A tensor or image handed to privbench has the wrong shape, dtype or range."""


class PrerequisiteError(PrivbenchError):
    """Something a run needs on the machine is missing (a Java runtime, a model file); the
    message says how to install it."""


class StoreError(PrivbenchError):
    """The results store cannot be opened or written."""


class OutputError(PrivbenchError):
    """An output folder cannot be created or written."""


class DataError(PrivbenchError):
    """A dataset folder is missing, incomplete or malformed."""


class TaskError(PrivbenchError):
    """A designer fit or a cell failed (the message is its reason); the run's other tasks went
    on."""
