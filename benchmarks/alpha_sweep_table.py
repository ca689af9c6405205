"""The 2PSC α sweep's table: captioning utility and the pretrained face detector through each lens.

    privbench run --spec benchmarks/specs/2psc-alpha-sweep.yaml --out sweep-out
    python benchmarks/alpha_sweep_table.py --store sweep-out/results.db

2PSC claims that its learned lens keeps captioning while a pretrained face detector fails
through it. This prints, for every lens of the sweep (designer budget × α), the captioning
utility (chance-normalized, with its 95 % bootstrap interval over the test scenes), CIDEr-D,
the pretrained detector's AP50 through the lens, the privacy against it (with its interval),
and whether the lens meets 2PSC's claim here: AP50 < 0.3 with captioning utility ≥ 0.8.
"""

from __future__ import annotations

import argparse
import math
import platform
from datetime import datetime, timezone

import pandas as pd

from privbench.runs.scores import leaderboard_table
from privbench.runs.store import ResultStore

CAPTIONING = "captioning"
DETECTION = "face-detection-attack[pretrained]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, help="the sweep's results.db (or a URL)")
    args = parser.parse_args(argv)
    url = args.store if "://" in args.store else f"sqlite:///{args.store}"
    rows = ResultStore(url).dataframe()
    table = leaderboard_table(rows)
    print(
        f"# alpha_sweep_table.py, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()}, store {args.store}"
    )
    header = (
        "| lens | α | captioning utility [95 %] | CIDEr-D | pretrained AP50 | "
        "privacy [95 %] | AP50 < 0.3 and utility ≥ 0.8 |"
    )
    print(header)
    print("|" + "---|" * 7)
    for _, entry in table.sort_values(["encoder"]).iterrows():
        ap50 = entry.get(f"{DETECTION}.ap50", math.nan)
        alpha = entry["alpha"]
        print(
            f"| {entry['encoder']} | {'' if alpha is None or pd.isna(alpha) else f'{alpha:g}'} "
            f"| {_with_interval(entry, 'utility')} | {entry.get(f'{CAPTIONING}.cider'):.1f} "
            f"| {ap50:.3f} | {_with_interval(entry, 'privacy')} "
            f"| {'yes' if ap50 < 0.3 and entry['utility'] >= 0.8 else 'no'} |"
        )


def _with_interval(entry: pd.Series, score: str) -> str:
    low, high = entry.get(f"{score}_lo"), entry.get(f"{score}_hi")
    interval = "" if low is None or math.isnan(low) else f" [{low:.3f}, {high:.3f}]"
    return f"{entry[score]:.3f}{interval}"


if __name__ == "__main__":
    main()
