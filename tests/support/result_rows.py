"""Hand-made result rows (the store's columns) for the scoring and interval tests."""

from __future__ import annotations

from privbench.api.items import ItemScores


def result_row(
    encoder,
    evaluation,
    role,
    value,
    chance=None,
    seed=0,
    protocol=None,
    metric="m",
    items=None,
):
    """One row of ``encoder`` on ``evaluation``; ``items``: its headline per test item (the
    value is then their mean)."""
    if items is not None:
        value = float(sum(items) / len(items))
    return {
        "benchmark": "b",
        "benchmark_version": "1",
        "dataset_fingerprint": "f",
        "dataset": "d",
        "encoder": encoder,
        "encoder_label": encoder,
        "encoder_config_hash": encoder + "h",
        "encoder_weights_hash": None,
        "alpha": None,
        "study": None,
        "trial": None,
        "evaluation": evaluation,
        "evaluation_version": "1",
        "evaluation_config": {},
        "role": role,
        "protocol": protocol,
        "seed": seed,
        "metrics": {metric: value},
        "headline_metric": metric,
        "headline_value": value,
        "higher_is_better": True,
        "chance": chance,
        "source": "measured",
        "details": {} if items is None else {"items": ItemScores.per_item(items).to_dict()},
    }
