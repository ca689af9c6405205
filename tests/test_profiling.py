"""The profile of a task: exclusive sections that add up to its wall time, kept in its row."""

import time

import pytest

from privbench.api.profiling import SECTIONS, profiled, section
from privbench.pipeline import run


def _busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_nested_sections_are_exclusive_and_add_up_to_the_total():
    with profiled() as profile:
        with section("train"):
            _busy(0.05)
            with section("read"):
                _busy(0.03)
            with section("validate"):
                time.sleep(0.04)  # wall without CPU
        _busy(0.02)  # claimed by no section: "other"
    result = profile.as_dict()
    assert result["read"]["cpu_s"] == pytest.approx(0.03, abs=0.01)
    assert result["train"]["cpu_s"] == pytest.approx(0.05, abs=0.01)  # not train + read
    assert result["validate"]["wall_s"] == pytest.approx(0.04, abs=0.02)
    assert result["validate"]["cpu_s"] < 0.01
    assert result["other"]["cpu_s"] == pytest.approx(0.02, abs=0.01)
    parts = sum(value["wall_s"] for name, value in result.items() if name != "total")
    assert parts == pytest.approx(result["total"]["wall_s"], abs=0.005)
    assert [name for name in result if name != "total"] == [
        name for name in SECTIONS if name in result
    ]


def test_sections_outside_a_profile_record_nothing_and_profiles_nest():
    with section("train"):  # no profile: nothing to charge
        pass
    with profiled() as outer:
        with section("io"):
            with profiled() as inner:
                with section("hash"):
                    _busy(0.01)
    assert "hash" in inner.as_dict() and "hash" not in outer.as_dict()
    assert outer.as_dict()["io"]["wall_s"] >= inner.as_dict()["total"]["wall_s"]


def test_every_cell_row_keeps_its_profile(toy, tmp_path):
    report = run(
        toy.toy_spec(),
        out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        report=True,
        render=False,
    )
    for execution in report.results["execution"]:
        profile = execution["profile"]
        assert profile["total"]["wall_s"] > 0
        # the toy task reads its measurements through the pipeline (encoded or cached)
        assert profile.get("encode", profile.get("read", {})).get("wall_s", 0) > 0
        parts = sum(v["wall_s"] for name, v in profile.items() if name != "total")
        assert parts == pytest.approx(profile["total"]["wall_s"], rel=0.01, abs=0.01)
    assert report.data_time_s > 0
