"""Attack strength at the current budget and at cheaper ones, on every encoder of a benchmark.

    python benchmarks/attack_strength.py --attack face-id \\
        --variant 'small-cnn only={zoo: [small-cnn]}'
    python benchmarks/attack_strength.py --attack reconstruction --variant '3 epochs={epochs: 3}'
    python benchmarks/attack_strength.py --attack 'face-detection-attack[finetuned]' \\
        --variant '2 epochs={finetune_epochs: 2}' --store sqlite:///privbench-out/results.db

A cheaper attacker budget may replace the current one only where the attack is at least as
strong on every encoder (success within ``--tolerance``, default 0.02, of the current budget's,
or higher): a weaker attacker overstates privacy. This script measures exactly that. It takes
the benchmark (default: the built-in default, its default preset) resolved with its preset,
keeps only the one attack entry (by label or name), and runs it on every encoder entry (the
learned ones fitted or taken from the cache) once per budget: ``current`` (the preset's config)
and each ``--variant NAME=YAML``, whose YAML mapping is merged into the entry's config. The
attack's success is its headline metric (face-ID top-1, AP50, the share of faces found, …).

The cells go into one store (``--store``; default a fresh SQLite file under ``--out``): the
``current`` cells have the keys of the benchmark's own run, so pointing ``--store`` at a default
run's store reuses them. It prints one row per encoder: success per budget, the difference to
``current`` and whether the variant is acceptable, then the total cell wall seconds per budget
(what the cheaper budget saves).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import yaml

import privbench
from privbench.runs.spec import builtin_benchmark, deep_merge, load_spec


def parse_variant(text: str) -> tuple[str, dict]:
    name, sep, body = text.partition("=")
    if not sep or not name.strip():
        raise SystemExit(f"--variant must be NAME=YAML (e.g. 'short={{epochs: 3}}'); got {text!r}")
    override = yaml.safe_load(body) or {}
    if not isinstance(override, dict):
        raise SystemExit(f"--variant {name!r}: the YAML must be a mapping; got {body!r}")
    return name.strip(), override


def variant_spec(spec, attack: str, variant: str, override: dict) -> dict:
    """The resolved spec with only ``attack`` (label or name), its config merged with
    ``override`` and labelled with the variant's name."""
    data = spec.model_dump(mode="json")
    entries = [entry for entry in data["attacks"] if attack in (entry["label"], entry["name"])]
    if len(entries) != 1:
        labels = [entry["label"] or entry["name"] for entry in data["attacks"]]
        raise SystemExit(f"--attack {attack!r} must name one attack entry of: {labels}")
    entry = entries[0]
    entry["config"] = deep_merge(entry["config"], override)
    if override:
        entry["label"] = f"{entry['label'] or entry['name']} ({variant})"
    data["tasks"], data["attacks"] = [], [entry]
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attack", required=True, help="attack entry label or name")
    parser.add_argument("--variant", action="append", default=[], help="NAME=YAML override")
    parser.add_argument("--benchmark", default="synthfaces", help="built-in name or spec path")
    parser.add_argument("--preset", default=None)
    parser.add_argument("--encoders", default=None, help="comma-separated encoder labels")
    parser.add_argument("--store", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--tolerance", type=float, default=0.02)
    args = parser.parse_args(argv)
    print(
        f"# attack_strength.py, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()} {os.cpu_count()} cores, python {sys.version.split()[0]}"
    )
    print("# command: python benchmarks/attack_strength.py " + " ".join(argv or sys.argv[1:]))
    base = (
        builtin_benchmark(args.benchmark)
        if not args.benchmark.endswith((".yaml", ".yml"))
        else load_spec(Path(args.benchmark))
    )
    spec = base.resolve(args.preset)
    out = Path(args.out or tempfile.mkdtemp(prefix="privbench-strength-"))
    store = args.store or f"sqlite:///{out / 'results.db'}"
    variants = [("current", {})] + [parse_variant(text) for text in args.variant]
    encoders = args.encoders.split(",") if args.encoders else None
    success: dict[str, dict[str, float]] = {}
    walls: dict[str, float] = {}
    for name, override in variants:
        report = privbench.run(
            variant_spec(spec, args.attack, name, override),
            encoders=encoders,
            out_dir=out / "runs" / name.replace(" ", "-"),
            store=store,
            cache_dir=args.cache_dir,
            render=False,
            report=True,
        )
        keys = {cell.key for cell in report.cells}
        rows = report.results[report.results["cell_key"].isin(keys)]
        walls[name] = float(rows["wall_time_s"].fillna(0).sum())
        for _, row in rows.iterrows():
            success.setdefault(row["encoder_label"], {})[name] = float(row["headline_value"])
    names = [name for name, _ in variants]
    header = ["encoder", *names, *(f"Δ {n}" for n in names[1:])]
    lines = [" | ".join(header), " | ".join("---" for _ in header)]
    weaker = {name: [] for name in names[1:]}
    for label, values in success.items():
        current = values.get("current", float("nan"))
        deltas = []
        for name in names[1:]:
            delta = values.get(name, float("nan")) - current
            deltas.append(f"{delta:+.3f}")
            if not delta >= -args.tolerance:
                weaker[name].append(label)
        lines.append(
            " | ".join([label, *(f"{values.get(n, float('nan')):.3f}" for n in names), *deltas])
        )
    lines.append(
        " | ".join(["cells wall s", *(f"{walls[n]:.0f}" for n in names), *("" for _ in names[1:])])
    )
    print("\n".join(f"| {line} |" for line in lines))
    for name, labels in weaker.items():
        verdict = "acceptable" if not labels else f"WEAKER on {', '.join(labels)}"
        print(f"{name}: {verdict} (tolerance {args.tolerance})")
    print(f"store: {store}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
