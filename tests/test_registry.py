import pytest

import privbench
from privbench.api.errors import ConfigError, UnknownNameError
from privbench.api.registry import Registry


def test_builtin_components_are_listed():
    assert {"identity", "gaussian-blur", "pixelate", "low-res"} <= set(privbench.list_encoders())
    assert "synthfaces" in privbench.list_benchmarks()
    assert privbench.list_encoders() == sorted(privbench.list_encoders())


@pytest.mark.parametrize("name", privbench.list_encoders())
def test_every_encoder_constructs_with_defaults(name):
    encoder = privbench.get_encoder(name)
    assert isinstance(encoder, privbench.Encoder)
    assert encoder.name == name
    assert isinstance(encoder.describe(), dict) and encoder.describe()


def test_unknown_name_suggests_closest():
    with pytest.raises(UnknownNameError) as info:
        privbench.get_encoder("pixelat")
    message = str(info.value)
    assert (
        "'pixelate'" in message
        and "Did you mean" in message
        and "privbench list encoders" in message
    )


def test_bad_config_names_the_field_and_accepted_fields():
    with pytest.raises(ConfigError) as info:
        privbench.get_encoder("pixelate", block=3)
    assert "'block'" in str(info.value) and "block_px" in str(info.value)
    with pytest.raises(ConfigError) as info:
        privbench.get_encoder("gaussian-blur", sigma_px=-1)
    assert "sigma_px" in str(info.value) and "-1" in str(info.value)


def test_decorator_registration_and_duplicate_names():
    registry = Registry("widget", "privbench.test-widgets")

    @registry.register("round-widget")
    class Round:
        pass

    assert registry.get("round-widget") is Round
    assert Round.registered_name == "round-widget"
    assert registry.names() == ["round-widget"]
    with pytest.raises(ConfigError, match="already registered"):

        @registry.register("round-widget")
        class Other:
            pass

    with pytest.raises(ConfigError, match="Invalid widget name"):
        registry.register("has space")


def test_evaluation_lookup_covers_tasks_and_attacks(toy):
    assert privbench.get_evaluation("toy-utility").role == "utility"
    assert privbench.get_evaluation("toy-attack").role == "privacy"
    with pytest.raises(UnknownNameError, match="toy-attack"):
        privbench.get_evaluation("toy-atack")
