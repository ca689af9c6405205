"""A benchmark run in its own output folder and artifact cache (the engine tests compare runs)."""

from __future__ import annotations

from pathlib import Path

import privbench


def run_isolated(spec, tmp_path: Path, name: str, **options):
    """``privbench.run`` into ``tmp_path/name`` with the cache ``tmp_path/cache-name``; the
    full RunReport, nothing rendered."""
    return privbench.run(
        spec,
        out_dir=tmp_path / name,
        cache_dir=tmp_path / f"cache-{name}",
        report=True,
        render=False,
        **options,
    )
