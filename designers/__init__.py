"""Built-in designers of privbench: one module per designer, each registering itself on import.

A designer fits a learnable encoder's parameters under a privacy weight α (the contract:
:mod:`privbench.api.designer`):

- ``adversarial`` (:mod:`~privbench.designers.adversarial`, CAnOPIC §3.2): alternate training a
  face-ID adversary and the utility model with training the encoder on eq. (1);
- ``end-to-end`` (:mod:`~privbench.designers.end_to_end`, 2PSC §2.3): encoder and utility model
  trained jointly on the task loss plus α times the distortion term.

Shared loss terms and helpers live in :mod:`~privbench.designers._common`.
"""

from privbench.designers._common import distortion_term, entropy
from privbench.designers.adversarial import (
    AdversarialConfig,
    AdversarialDesigner,
    canopic_encoder_loss,
    hardness_schedule,
)
from privbench.designers.end_to_end import EndToEndConfig, EndToEndDesigner

from privbench.api._discovery import import_submodules
from privbench.api.designer import Designer, DesignerConfig

import_submodules(__name__, __path__)

__all__ = [
    "AdversarialConfig",
    "AdversarialDesigner",
    "Designer",
    "DesignerConfig",
    "EndToEndConfig",
    "EndToEndDesigner",
    "canopic_encoder_loss",
    "distortion_term",
    "entropy",
    "hardness_schedule",
]
