"""Built-in benchmark definitions: every ``*.yaml`` here registers as a benchmark by its name."""

from privbench.runs.spec import _register_builtin_specs

_register_builtin_specs()
