"""Built-in encoders of privbench: one module per family, each registering itself on import."""

from privbench.api._discovery import import_submodules

import_submodules(__name__, __path__)
