"""The data layer: containers, the embedded ``synthfaces`` generator and real-data adapters."""

from privbench.data.containers import (
    SPLITS,
    BenchmarkData,
    LabeledImages,
    LabeledSplits,
    SceneSplits,
    Scenes,
)

# Importing the generator registers the "synthfaces" dataset (the DATASETS registry imports this package).
from privbench.data import synthfaces  # noqa: E402,F401
# Importing the real-data adapters registers coco, vggface2, widerface, fddb, imagenet and lfw.
from privbench.data.adapters import coco, fddb, imagenet, lfw, vggface2, widerface  # noqa: E402,F401
# The composite dataset joins several of them in one benchmark (the paper presets).
from privbench.data.adapters import composite  # noqa: E402,F401

__all__ = ["SPLITS", "BenchmarkData", "LabeledImages", "LabeledSplits", "SceneSplits", "Scenes"]
