"""``--set KEY=VALUE`` / ``run(overrides=...)``: any spec field from the command line (issue 17)."""

import pytest

import privbench
from privbench.api.errors import ConfigError
from privbench.cli import main
from privbench.runs.overrides import apply_overrides
from privbench.runs.spec import resolve_spec


def _entries(spec, name):
    return [e for e in spec.tasks + spec.attacks if name in (e.name, e.display_name)]


def test_evaluation_and_designer_configs_merge_into_the_resolved_preset():
    quick = resolve_spec("synthfaces")
    spec = apply_overrides(
        quick,
        {
            "evaluations.face-id.training.epochs": 3,
            "evaluations.face-detection-attack[finetuned].finetune_epochs": 1,
            "evaluations.face-detection-attack.detector.training.epochs": 2,
            "designers.adversarial.cycles": 2,
            "seeds": [0, 1],
            "encoders.1.config.sigma_px": 4,
        },
    )
    (face_id,) = _entries(spec, "face-id")
    assert face_id.config["training"] == {"epochs": 3}
    assert face_id.config["zoo"] == ["small-cnn"]  # the preset's setting is kept
    protocols = _entries(spec, "face-detection-attack")
    assert len(protocols) == 4
    assert all(p.config["detector"]["training"]["epochs"] == 2 for p in protocols)
    assert [p.config["finetune_epochs"] for p in protocols] == [3, 3, 3, 1]
    canopic = [e for e in spec.encoders if e.designer and e.designer.name == "adversarial"]
    assert [e.designer.config["cycles"] for e in canopic] == [2, 2, 2]
    assert [e.designer.config["alpha"] for e in canopic] == [1, 50, 300]
    assert spec.seeds == [0, 1] and spec.encoders[1].config == {"sigma_px": 4}
    assert apply_overrides(quick, {}) is quick


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"evaluations.nope.epochs": 1}, "no task or attack entry.*face-id"),
        ({"designers.end-to-end": 1}, "name a field of the end-to-end config"),
        ({"designers.nope.x": 1}, "no designer entry.*adversarial, end-to-end"),
        ({"nosuch": 1}, "the spec has no field 'nosuch'; its fields are: .*seeds"),
        ({"seeds.x": 1}, "seeds is a list of 1; 'x' is not an index"),
        ({"encoders.99.config.sigma_px": 1}, "encoders is a list of 10"),
        ({"seeds": "zero"}, "seeds"),
    ],
)
def test_bad_keys_and_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(resolve_spec("synthfaces"), overrides)


def test_a_bad_component_value_fails_before_any_work(toy, tmp_path):
    with pytest.raises(ConfigError, match="sleep_s"):
        privbench.run(
            toy.toy_spec(),
            out_dir=tmp_path / "out",
            overrides={"evaluations.toy-attack.sleep_s": "long"},
        )
    assert not (tmp_path / "out").exists()


def test_set_on_the_command_line(capsys, toy, tmp_path):
    import yaml

    spec = tmp_path / "toy.yaml"
    spec.write_text(yaml.safe_dump(toy.toy_spec()))
    args = ["run", "--spec", str(spec), "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as info:
        main([*args, "--set", "encoders.1.config.sigma_px=2", "--set", "seeds=[0, 1]"])
    output = capsys.readouterr().out
    assert info.value.code in (0, None), output
    assert "12 cells run" in output
