"""Self-contained cells, declared requirements, typed registries, protocols."""

import pickle
import typing

import pytest
import torch

import privbench
from privbench.api.cache import ArtifactCache
from privbench.api.errors import ConfigError
from privbench.api.evaluation import Protocol
from privbench.api.registry import Registry
from privbench.runs import cells as cells_module
from privbench.runs.cells import evaluate_cell
from privbench.runs.runner import Runner
from privbench.runs.spec import resolve_spec


def _plan(toy, tmp_path, **overrides):
    spec = resolve_spec(toy.toy_spec(**overrides))
    runner = Runner(
        spec, store=None, device=torch.device("cpu"), cache=ArtifactCache(tmp_path / "cache")
    )
    return runner.plan(runner.load_data())


def test_a_pickled_cell_evaluates_to_the_same_row_from_the_cache_alone(toy, tmp_path):
    cells, fitted = _plan(toy, tmp_path)
    assert set(fitted) == {"identity", "gaussian-blur", "pixelate"}
    assert len(cells) == 6 and len({cell.key for cell in cells}) == 6
    cell = next(
        c
        for c in cells
        if c.encoder_entry.name == "gaussian-blur" and c.evaluation.role == "privacy"
    )
    here = evaluate_cell(cell)

    shipped = pickle.loads(pickle.dumps(cell))  # what another process would receive
    cells_module._LOADED.clear()  # ... which has not loaded the data: it rebuilds it by reference
    builds = toy.CALLS["dataset"]
    there = evaluate_cell(shipped)
    assert toy.CALLS["dataset"] == builds + 1
    assert shipped.key == cell.key
    assert there.cell_key == here.cell_key and there.metrics == here.metrics
    assert there.encoder_weights_hash == here.encoder_weights_hash
    assert there.dataset_fingerprint == here.dataset_fingerprint
    assert here.protocol == "retrained" and here.preset is None


def test_the_cell_key_changes_with_what_the_row_depends_on(toy, tmp_path):
    base, _ = _plan(toy, tmp_path)
    other_seed, _ = _plan(toy, tmp_path, seeds=[1])
    other_version, _ = _plan(toy, tmp_path, version="2")
    assert not {c.key for c in base} & {c.key for c in other_seed}
    assert not {c.key for c in base} & {c.key for c in other_version}


def test_requirements_are_checked_before_any_encoder_is_fitted(toy, tmp_path):
    with pytest.raises(ConfigError) as info:
        _plan(
            toy,
            tmp_path,
            tasks=["face-detection"],
            encoders=[{"name": "toy-learnable-blur", "designer": {"name": "adversarial"}}],
        )
    message = str(info.value)
    assert "'face-detection'" in message and "scenes" in message
    assert "identities" in message and "face_vs_noface" in message  # what the dataset has


def test_registries_accept_only_subclasses_of_their_contract():
    with pytest.raises(ConfigError) as info:

        @privbench.register_encoder("not-an-encoder")
        class NotAnEncoder:
            pass

    assert "privbench.api.encoder.Encoder" in str(info.value)
    assert "not-an-encoder" not in privbench.list_encoders()
    with pytest.raises(ConfigError, match="privbench.api.evaluation.Evaluation"):
        privbench.register_attack("not-an-attack")(dict)
    untyped = Registry("widget", "privbench.test-widgets")
    assert untyped.base is None
    with pytest.raises(ConfigError, match="not callable"):
        untyped.register("three")(3)


def test_protocols_are_one_enum():
    from privbench.attacks.face_detection_attack import PROTOCOLS, FaceDetectionAttackConfig
    from privbench.attacks.face_id import FaceIdConfig

    values = {protocol.value for protocol in Protocol}
    for config in (FaceDetectionAttackConfig, FaceIdConfig):
        accepted = set(typing.get_args(config.model_fields["protocol"].annotation))
        assert accepted <= values, config
    assert {p.value for p in PROTOCOLS} == set(
        typing.get_args(FaceDetectionAttackConfig.model_fields["protocol"].annotation)
    )
    for name in privbench.list_attacks():
        attack = privbench.get_attack(name)
        assert attack.protocol_name in values


def test_a_data_source_on_a_plain_dataset_is_a_clear_error(toy, tmp_path):
    from privbench.runs.cells import dataset_view

    data = toy.build_toy()
    assert dataset_view(data, None) is data
    with pytest.raises(ConfigError, match="'data: faces'.*'toy-patterns' is not a composite"):
        dataset_view(data, "faces")
