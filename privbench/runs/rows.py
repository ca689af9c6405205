"""The result row: what one cell measured and everything needed to reproduce and rank it.

The result-row contract (docs/architecture.md): benchmark name and version, dataset and
content fingerprint, encoder name + config hash + learned-weights hash, α, evaluation name +
version + protocol, seed, metrics, wall time, device, package versions, git commit, timestamp.
Rows with different benchmark or evaluation versions are never ranked together.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from privbench.runs.cells import Cell, CellOutcome

JSON_COLUMNS = (
    "encoder_config",
    "encoder_description",
    "evaluation_config",
    "metrics",
    "details",
    "package_versions",
    "execution",
)


#: Distributions whose version can change a metric: the models and training (torch,
#: torchvision, mmdet/mmengine/mmcv), the scorers (torchmetrics, pycocotools, pycocoevalcap,
#: scipy's assignment), the real face models (dlib, its weights, OpenCV) and the image decoder.
METRIC_PACKAGES = (
    "privbench",
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "torchmetrics",
    "pycocotools",
    "pycocoevalcap",
    "mmdet",
    "mmengine",
    "mmcv",
    "opencv-python",
    "opencv-python-headless",
    "dlib",
    "dlib-bin",
    "face_recognition_models",
    "pillow",
)


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of everything installed that a result depends on (:data:`METRIC_PACKAGES`, and
    ``java``: the runtime of the caption scorers), looked up once per process."""
    versions = {}
    for name in METRIC_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    java = java_version()
    if java is not None:
        versions["java"] = java
    return versions


def java_version() -> str | None:
    """The Java runtime's version line (``openjdk version "17.0.15" 2025-04-15`` → ``openjdk
    17.0.15``), or None without one."""
    java = shutil.which("java")
    if java is None:
        return None
    try:
        output = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    first = (output.stderr or output.stdout).strip().splitlines()
    match = re.match(r'(\S+) version "([^"]+)"', first[0]) if first else None
    return f"{match.group(1)} {match.group(2)}" if match else (first[0] if first else None)


@functools.lru_cache(maxsize=1)
def hardware() -> dict[str, str]:
    """The CPU model of this machine (and the GPU's, when CUDA is available), as rows record
    where a cell ran: floating-point results can differ between CPU and GPU models."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):  # no /proc (macOS, Windows): platform's name stays
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    described = {"cpu": cpu, "cpu_count": str(os.cpu_count() or 1)}
    import torch

    if torch.cuda.is_available():
        described["gpu"] = torch.cuda.get_device_name(torch.cuda.current_device())
    return described


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """Commit of the privbench source tree, when it is a git checkout (else None)."""
    source = Path(__file__).resolve().parents[2]
    try:
        output = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return output.stdout.strip() or None if output.returncode == 0 else None


@dataclass
class ResultRow:
    """One cell's result (see the module docstring)."""

    cell_key: str
    benchmark: str
    benchmark_version: str
    dataset: str
    dataset_fingerprint: str
    encoder: str
    encoder_label: str
    encoder_config: dict[str, Any]
    encoder_config_hash: str
    evaluation: str
    evaluation_version: str
    evaluation_config: dict[str, Any]
    role: str
    seed: int
    metrics: dict[str, float]
    headline_metric: str
    headline_value: float | None
    higher_is_better: bool = True
    chance: float | None = None
    protocol: str | None = None
    preset: str | None = None
    encoder_weights_hash: str | None = None
    encoder_description: dict[str, Any] = field(default_factory=dict)
    alpha: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float | None = None
    device: str | None = None
    package_versions: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    study: str | None = None
    trial: int | None = None
    source: str = "measured"
    #: What ran the cell, e.g. ``{"threads": 1, "worker": "pid@host", "engine": "ray"}``.
    execution: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    def to_record(self) -> dict[str, Any]:
        """Column → value; JSON columns stay Python objects (the column type encodes them)."""
        return dict(self.__dict__)

    @classmethod
    def from_cell(cls, cell: Cell, outcome: CellOutcome) -> ResultRow:
        """The row of ``cell`` from what :func:`~privbench.runs.cells.evaluate_cell` measured."""
        evaluation, fitted, result = cell.evaluation, cell.fitted, outcome.result
        headline = evaluation.headline
        spec = evaluation.metrics.get(headline)
        details = dict(result.details)
        if result.items is not None:
            details["items"] = result.items.to_dict()
        if outcome.curves:
            details["curves"] = outcome.curves
        if fitted.designer is not None:
            details["designer"] = fitted.designer
        if outcome.data_source_fingerprint is not None:
            details["data_source"] = cell.evaluation_entry.data
            details["data_source_fingerprint"] = outcome.data_source_fingerprint
        return cls(
            cell_key=cell.key,
            benchmark=cell.benchmark,
            benchmark_version=cell.benchmark_version,
            preset=cell.preset,
            dataset=cell.data.data_name,
            dataset_fingerprint=cell.data.fingerprint,
            encoder=fitted.encoder.name,
            encoder_label=cell.encoder_entry.display_name,
            encoder_config=fitted.encoder.config_dict(),
            encoder_config_hash=fitted.config_hash,
            encoder_weights_hash=fitted.weights_hash,
            encoder_description=fitted.encoder.describe(),
            alpha=fitted.alpha,
            evaluation=evaluation.name,
            evaluation_version=evaluation.version,
            evaluation_config=evaluation.config_dict(),
            role=evaluation.role,
            protocol=evaluation.protocol_name,
            seed=cell.seed,
            metrics={k: float(v) for k, v in result.metrics.items()},
            headline_metric=headline,
            headline_value=float(result.metrics[headline]) if headline in result.metrics else None,
            higher_is_better=spec.higher_is_better if spec else True,
            chance=result.chance,
            details=details,
            wall_time_s=outcome.wall_time_s,
            device=cell.device,
            package_versions=package_versions(),
            git_commit=git_commit(),
            study=cell.study,
            trial=cell.trial,
        )
