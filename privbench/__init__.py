"""privbench: a benchmark and leaderboard for privacy encoders.

A privacy encoder is a camera whose optics or analog front end destroys private information
(faces, identities) before the image is digitized, while keeping what a vision task needs.
privbench crosses registered encoders with utility tasks and privacy attacks, stores one result
row per cell, and renders privacy-utility Pareto fronts and a leaderboard.
"""

from __future__ import annotations

from typing import Any

from privbench.api.adapter import (
    AdapterConfig,
    DatasetAdapter,
    FolderAdapter,
    dataset_adapter,
    load_dataset,
)
from privbench.api.config import ComponentConfig
from privbench.api.designer import Designer, DesignerConfig
from privbench.api.encoder import Encoder, EncoderConfig
from privbench.api.errors import PrivbenchError
from privbench.api.evaluation import (
    EvalInputs,
    EvalResult,
    Evaluation,
    EvaluationConfig,
    MetricSpec,
    Protocol,
    RunContext,
)
from privbench.api.registry import (
    get_attack,
    get_encoder,
    get_evaluation,
    get_task,
    list_attacks,
    list_benchmarks,
    list_datasets,
    list_designers,
    list_encoders,
    list_tasks,
    register_attack,
    register_dataset,
    register_designer,
    register_encoder,
    register_task,
)

__version__ = "0.1.0"


def run(spec: Any = None, **options: Any):
    """Run a benchmark spec (a BenchmarkSpec, a dict, a YAML path, or a benchmark name).

    Returns the results as a pandas DataFrame (one row per cell). See :mod:`privbench.pipeline`.
    """
    from privbench.pipeline import run as _run

    return _run(spec, **options)


def evaluate(camera: Any, benchmark: Any = None, **options: Any):
    """Run your own camera (an Encoder instance or a plain ``nn.Module``) on a benchmark like a
    registered encoder, beside ``identity`` (the clean reference); ``options``: ``label``,
    ``compare``, ``designer``, ``alphas``, ``measurement_range`` and :func:`run`'s options. See
    :func:`privbench.pipeline.evaluate`."""
    from privbench.pipeline import evaluate as _evaluate

    return _evaluate(camera, benchmark, **options)


__all__ = [
    "AdapterConfig",
    "ComponentConfig",
    "DatasetAdapter",
    "FolderAdapter",
    "Protocol",
    "dataset_adapter",
    "evaluate",
    "load_dataset",
    "Designer",
    "DesignerConfig",
    "Encoder",
    "EncoderConfig",
    "Evaluation",
    "EvaluationConfig",
    "EvalInputs",
    "EvalResult",
    "MetricSpec",
    "PrivbenchError",
    "RunContext",
    "get_attack",
    "get_encoder",
    "get_evaluation",
    "get_task",
    "list_attacks",
    "list_benchmarks",
    "list_datasets",
    "list_designers",
    "list_encoders",
    "list_tasks",
    "register_attack",
    "register_dataset",
    "register_designer",
    "register_encoder",
    "register_task",
    "run",
]
