import math

import numpy as np
import pandas as pd
import pytest
from support.result_rows import result_row

from privbench.report.pareto import pareto_front, plot_pareto
from privbench.runs.scores import (
    leaderboard_table,
    normalized_privacy,
    normalized_utility,
    pareto_front_indices,
    worst_case_privacy,
)


def test_normalized_utility_hand_made():
    # face vs no-face with balanced classes: chance 0.5, clean 0.99
    assert normalized_utility(0.9, 0.99, 0.5) == pytest.approx((0.9 - 0.5) / (0.99 - 0.5))
    assert normalized_utility(0.99, 0.99, 0.5) == 1.0
    assert normalized_utility(0.5, 0.99, 0.5) == 0.0  # a camera that sees nothing
    assert normalized_utility(0.45, 0.99, 0.5) == 0.0  # below chance clips to 0
    assert normalized_utility(1.0, 0.99, 0.5) == 1.0  # better than clean clips to 1
    # captioning: the most frequent caption scores CIDEr-D 44.0, clean 60.2; a captioner at
    # chance gets 0, not the 44.0 / 60.2 = 0.73 of a plain ratio
    assert normalized_utility(44.1, 60.2, 44.0) == pytest.approx(0.1 / 16.2)
    # a lower-is-better metric (an error rate: chance 0.5, clean 0.1, encoded 0.3) → half-way
    assert normalized_utility(0.3, 0.1, 0.5, higher_is_better=False) == pytest.approx(0.5)
    assert math.isnan(normalized_utility(0.3, 0.6, 0.5, higher_is_better=False))
    assert math.isnan(normalized_utility(0.5, 0.4, 0.5))  # the task fails even on clean images
    assert math.isnan(normalized_utility(float("nan"), 0.9, 0.5))
    assert math.isnan(normalized_utility(0.9, 0.99, float("nan")))


def test_normalized_privacy_hand_made():
    # 40 identities: chance 0.025; clean attack 0.975.
    assert normalized_privacy(0.975, 0.975, 0.025) == 0.0
    assert normalized_privacy(0.025, 0.975, 0.025) == 1.0
    assert normalized_privacy(0.5, 0.975, 0.025) == pytest.approx(1 - (0.5 - 0.025) / 0.95)
    assert normalized_privacy(0.01, 0.975, 0.025) == 1.0  # below chance clips to 1
    assert normalized_privacy(0.99, 0.975, 0.025) == 0.0  # stronger than on clean clips to 0
    assert math.isnan(normalized_privacy(0.3, 0.02, 0.025))  # attack useless even on clean images
    # a lower-is-better success metric (the attacker's error: chance 0.975, clean 0.025) is
    # scored by its declared direction, never backwards
    assert normalized_privacy(0.5, 0.025, 0.975, higher_is_better=False) == pytest.approx(
        1 - (0.5 - 0.975) / (0.025 - 0.975)
    )
    assert normalized_privacy(0.975, 0.025, 0.975, higher_is_better=False) == 1.0
    assert normalized_privacy(0.025, 0.025, 0.975, higher_is_better=False) == 0.0
    assert math.isnan(normalized_privacy(0.5, 0.975, 0.025, higher_is_better=False))


def test_worst_case_is_minimum_ignoring_undefined():
    assert worst_case_privacy([0.8, 0.3, float("nan"), 0.6]) == 0.3
    assert math.isnan(worst_case_privacy([float("nan")]))


def test_pareto_front_indices():
    utility = np.array([1.0, 0.9, 0.8, 0.7, 0.95, float("nan")])
    privacy = np.array([0.0, 0.5, 0.4, 0.9, 0.5, 1.0])
    # (0.8, 0.4) is dominated by (0.9, 0.5); (0.9, 0.5) by (0.95, 0.5); NaN rows are excluded.
    assert sorted(pareto_front_indices(utility, privacy)) == [0, 3, 4]


_row = result_row


def test_leaderboard_table_hand_made():
    rows = pd.DataFrame(
        [
            _row("identity", "util-a", "utility", 0.98, chance=0.5),
            _row("identity", "util-b", "utility", 0.80, chance=0.2),
            _row("identity", "att-1", "privacy", 0.95, chance=0.05, protocol="retrained"),
            _row("identity", "att-2", "privacy", 0.65, chance=0.05),
            # (0.74 − 0.5) / (0.98 − 0.5) = 0.5 of the clean advantage over chance
            _row("blur", "util-a", "utility", 0.74, chance=0.5),
            _row("blur", "util-b", "utility", 0.80, chance=0.2),
            _row("blur", "att-1", "privacy", 0.50, chance=0.05, protocol="retrained"),
            _row("blur", "att-2", "privacy", 0.05, chance=0.05),
            # A second seed for blur on att-1: seeds are averaged (0.50 and 0.70 → 0.60).
            _row("blur", "att-1", "privacy", 0.70, chance=0.05, seed=1, protocol="retrained"),
        ]
    )
    table = leaderboard_table(rows).set_index("encoder")
    assert table.loc["identity", "utility"] == pytest.approx(1.0)
    assert table.loc["identity", "privacy"] == pytest.approx(0.0)
    assert table.loc["blur", "utility"] == pytest.approx((0.5 + 1.0) / 2)
    # Per seed: seed 0 → 1 − 0.45/0.9 = 0.5; seed 1 has no clean reference for seed 1 → NaN,
    # ignored.
    assert table.loc["blur", "att-1[retrained].privacy"] == pytest.approx(0.5)
    assert table.loc["blur", "att-2.privacy"] == pytest.approx(1.0)
    assert table.loc["blur", "privacy"] == pytest.approx(0.5)
    assert table.loc["blur", "worst_attack"] == "att-1[retrained]"
    assert table.loc["blur", "att-1[retrained].m"] == pytest.approx(0.6)
    assert bool(table.loc["blur", "pareto"]) and bool(table.loc["identity", "pareto"])


def test_pareto_plot_written(tmp_path):
    table = pd.DataFrame(
        {
            "encoder": ["a", "b", "c", "d"],
            "utility": [1.0, 0.9, 0.7, float("nan")],
            "privacy": [0.0, 0.6, 0.5, 0.2],
        }
    )
    assert list(pareto_front(table.dropna())["encoder"]) == ["b", "a"]
    path = plot_pareto(table, tmp_path / "p.png")
    assert path.stat().st_size > 5000


def test_hypervolume_hand_made():
    from privbench.report.pareto import hypervolume

    assert hypervolume([1.0], [1.0]) == pytest.approx(1.0)
    # Two points: 1.0×0.2 + 0.5×(0.8 − 0.2) = 0.5; a dominated third point adds nothing.
    assert hypervolume([1.0, 0.5], [0.2, 0.8]) == pytest.approx(0.5)
    assert hypervolume([1.0, 0.5, 0.4], [0.2, 0.8, 0.7]) == pytest.approx(0.5)
    assert hypervolume([0.5, float("nan")], [0.5, 1.0]) == pytest.approx(0.25)
    assert hypervolume([], []) == 0.0


def test_hypervolume_matches_monte_carlo():
    from privbench.report.pareto import hypervolume

    rng = np.random.default_rng(0)
    utility, privacy = rng.random(12), rng.random(12)
    samples = rng.random((200_000, 2))
    dominated = (
        (samples[:, None, 0] <= utility[None]) & (samples[:, None, 1] <= privacy[None])
    ).any(1)
    assert hypervolume(utility, privacy) == pytest.approx(dominated.mean(), abs=0.005)


def test_fronts_plot(tmp_path):
    from privbench.report.pareto import plot_fronts

    a = pd.DataFrame(
        {"utility": [0.9, 0.8, 0.6], "privacy": [0.2, 0.5, 0.4], "alpha": [1.0, 50.0, 300.0]}
    )
    b = pd.DataFrame({"utility": [0.95, 0.7], "privacy": [0.1, 0.6], "alpha": [1.0, float("nan")]})
    path = plot_fronts({"canopic": a, "lens": b}, tmp_path / "fronts.png")
    assert path.stat().st_size > 5000


ODD_LABEL = "<script>alert('x')</script> & co"
ODD_LABEL_ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"


def test_leaderboard_page_escapes_labels_metric_names_and_titles(tmp_path):
    from privbench.report.leaderboard import render_outputs

    rows = pd.DataFrame(
        [
            _row("identity", "util-a", "utility", 0.98),
            _row("identity", "att-1", "privacy", 0.95, chance=0.05, metric="<b>m&n</b>"),
            _row(ODD_LABEL, "util-a", "utility", 0.49),
            _row(ODD_LABEL, "att-1", "privacy", 0.50, chance=0.05, metric="<b>m&n</b>"),
        ]
    )
    outputs = render_outputs(rows, tmp_path, title="A <title> & more")
    page = outputs["html"].read_text()
    assert page.count("<script>") == 1  # the page's own sorting script, nothing else
    assert f"<td class=l>{ODD_LABEL_ESCAPED}</td>" in page
    assert "<th>att-1.&lt;b&gt;m&amp;n&lt;/b&gt;</th>" in page
    assert "<h2>A &lt;title&gt; &amp; more</h2>" in page
    assert "<b>m&n</b>" not in page and "<title>" not in page.split("</head>")[1]
    # Markdown and CSV keep the labels as they are.
    assert f"| {ODD_LABEL} |" in outputs["markdown"].read_text()
    assert ODD_LABEL in set(pd.read_csv(outputs["csv"])["encoder"])


def test_leaderboard_page_escapes_captions_and_file_names():
    import importlib.resources

    from privbench.report.page import CLEAN_SAMPLE, PAGE_TEMPLATE, Section, to_html

    assert (importlib.resources.files("privbench.report") / "templates" / PAGE_TEMPLATE).is_file()
    table = pd.DataFrame({"encoder": [ODD_LABEL], "utility": [0.5], "privacy": [0.5]})
    section = Section("t", table, plot="p&q.png", curves={ODD_LABEL: "detection/a&b.png"})
    samples = {CLEAN_SAMPLE: "samples/_clean.png", ODD_LABEL: "samples/a&b.png"}
    page = to_html([section], samples, figure="fig<3>.png")
    assert page.count("<script>") == 1
    assert f"<p>{ODD_LABEL_ESCAPED}<br><img src='detection/a&amp;b.png'" in page
    assert f"<tr><td>{ODD_LABEL_ESCAPED}</td><td><img src='samples/a&amp;b.png'></td></tr>" in page
    assert "<img src='p&amp;q.png'" in page and "<img src='fig&lt;3&gt;.png'" in page
    assert "<tr><td>clean input</td><td><img src='samples/_clean.png'></td></tr>" in page
