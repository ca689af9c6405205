"""Built-in benchmark definitions (YAML specs shipped with privbench)."""
