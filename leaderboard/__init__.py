"""The published leaderboard as data: one YAML file per reference entry in ``reference/``.

The rendering code lives in :mod:`privbench.report`; this folder holds only what a contributor
edits to publish or correct an entry.
"""
