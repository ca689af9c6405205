"""The data layer: containers, the embedded ``synthfaces`` generator and real-data adapters.

Importing this package registers every built-in dataset (the DATASETS registry imports it): the
generator ``synthfaces``, the real-data adapters ``coco``, ``vggface2``, ``widerface``, ``fddb``,
``imagenet`` and ``lfw``, and ``composite``, which joins several of them in one benchmark.
"""

from privbench.data import synthfaces  # noqa: F401
from privbench.data.adapters import (  # noqa: F401
    coco,
    composite,
    fddb,
    imagenet,
    lfw,
    vggface2,
    widerface,
)
from privbench.data.containers import (
    SPLITS,
    BenchmarkData,
    LabeledImages,
    LabeledSplits,
    Scenes,
    SceneSplits,
)

__all__ = ["SPLITS", "BenchmarkData", "LabeledImages", "LabeledSplits", "SceneSplits", "Scenes"]
