"""The data layer: containers, the embedded ``synthfaces`` generator and real-data adapters."""

from privbench.data.containers import (
    SPLITS,
    BenchmarkData,
    LabeledImages,
    LabeledSplits,
    SceneSplits,
    Scenes,
)

__all__ = ["SPLITS", "BenchmarkData", "LabeledImages", "LabeledSplits", "SceneSplits", "Scenes"]
