"""Property-based checks of the inputs users hand privbench (issue 18): any structure as a spec,
any bytes as an image. Every failure must be a PrivbenchError whose message names the input;
nothing else may escape (a TypeError from deep inside pydantic or Pillow is a bug)."""

import io

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from privbench.api.errors import PrivbenchError
from privbench.runs.spec import BenchmarkSpec, load_spec

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
keys = st.one_of(
    st.sampled_from(["name", "encoders", "tasks", "attacks", "seeds", "config", "label", "alphas"]),
    st.text(max_size=8),
    st.integers(),
    st.none(),
)
structures = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=20,
)
near_specs = st.fixed_dictionaries(
    {"name": st.one_of(st.text(min_size=1, max_size=6), scalars)},
    optional={
        "encoders": st.one_of(
            st.lists(st.one_of(st.sampled_from(["identity", "pixelate", "nope"]), structures)),
            structures,
        ),
        "tasks": st.lists(st.one_of(st.sampled_from(["face-vs-noface", "toy"]), structures)),
        "seeds": st.one_of(st.lists(st.integers(min_value=-(2**40), max_value=2**70)), structures),
        "presets": structures,
        "dataset": structures,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(structures, near_specs))
def test_any_structure_is_a_spec_or_a_privbench_error(raw):
    try:
        spec = load_spec(raw)
    except PrivbenchError as error:
        assert str(error).strip(), "an error must say what is wrong"
        return
    assert isinstance(spec, BenchmarkSpec)


def _png(width: int, height: int, mode: str) -> bytes:
    import numpy as np
    from PIL import Image

    dtype = np.uint16 if mode.startswith("I;16") else np.uint8
    channels = {"RGB": (3,), "RGBA": (4,), "L": (), "I;16": (), "P": ()}[mode]
    array = np.zeros((height, width, *channels), dtype=dtype)
    picture = Image.fromarray(array) if mode != "P" else Image.fromarray(array, mode="P")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    width=st.integers(min_value=1, max_value=80),
    height=st.integers(min_value=1, max_value=80),
    mode=st.sampled_from(["RGB", "RGBA", "L", "I;16", "P"]),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=400)),
    noise=st.binary(max_size=64),
)
@example(width=1, height=2, mode="RGB", cut=45, noise=b"\x08\x08" + b"\x00" * 13)  # found in CI
def test_any_image_file_loads_or_is_an_input_error(tmp_path, width, height, mode, cut, noise):
    from privbench.report.show import load_image

    data = _png(width, height, mode)
    if cut is not None:  # truncated, with garbage after the cut
        data = data[:cut] + noise
    path = tmp_path / "picture.png"
    path.write_bytes(data)
    try:
        image = load_image(path)
    except PrivbenchError as error:
        assert "picture.png" in str(error)
        return
    assert image.shape == (1, 3, height, width)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0


def test_the_properties_reach_the_failure_paths():
    """A reminder that the strategies above do produce the cases of the fault probe."""
    with pytest.raises(PrivbenchError):
        load_spec({"name": "x", 1: 2, "encoders": ["identity"]})
    with pytest.raises(PrivbenchError):
        load_spec([1])
