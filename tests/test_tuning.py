import optuna
import pytest

from privbench.api.errors import ConfigError
from privbench.runs.scores import pareto_front_indices
from privbench.runs.store import ResultStore
from privbench.runs.tuning import TuneSettings, trials_frame, tune


def _settings(toy, tmp_path, **overrides):
    base = dict(
        encoder="toy-learnable-blur",
        task="toy-utility",
        attack="toy-attack",
        trials=4,
        storage=f"sqlite:///{tmp_path / 'study.db'}",
        designer="end-to-end",
        designer_config={"epochs": 1, "batch_size": 8, "task": "face-id"},
        benchmark=toy.toy_spec(),
        preset=None,
        alpha_min=0.01,
        alpha_max=100.0,
        prune_below=None,
    )
    base.update(overrides)
    return TuneSettings(**base)


def test_study_matches_optuna_best_trials_and_resumes(toy, tmp_path):
    settings = _settings(toy, tmp_path)
    study = tune(settings, out_dir=tmp_path / "out", cache_dir=tmp_path / "cache")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4
    utility = [t.values[0] for t in complete]
    privacy = [t.values[1] for t in complete]
    ours = {complete[i].number for i in pareto_front_indices(utility, privacy)}
    assert ours == {t.number for t in study.best_trials}

    # Every trial's cells are in the results store, tagged with study and trial.
    rows = ResultStore(f"sqlite:///{tmp_path / 'out' / 'results.db'}").dataframe()
    tagged = rows[rows["study"] == settings.name]
    assert sorted(tagged["trial"].unique()) == [t.number for t in complete]
    assert set(tagged["evaluation"]) == {"toy-utility", "toy-attack"}
    assert len(rows[rows["encoder"] == "identity"]) == 2  # the clean reference is run once

    # Same storage and study name: the study continues to 5 finished trials (one more).
    settings.trials = 5
    resumed = tune(settings, out_dir=tmp_path / "out", cache_dir=tmp_path / "cache")
    assert len(resumed.trials) == 5
    frame = trials_frame(resumed)
    assert list(frame.columns[:5]) == ["trial", "state", "alpha", "utility", "privacy"]


def test_failed_trials_are_recorded_not_fatal(toy, tmp_path, monkeypatch):
    from privbench import designers

    original = designers.EndToEndDesigner.fit

    def fails_for_large_alpha(self, encoder, data, ctx):
        if self.config.alpha > 1.0:
            raise RuntimeError("optics diverged")
        return original(self, encoder, data, ctx)

    monkeypatch.setattr(designers.EndToEndDesigner, "fit", fails_for_large_alpha)
    study = tune(
        _settings(toy, tmp_path, trials=4, alpha_min=0.5, alpha_max=20.0),
        out_dir=tmp_path / "o",
        cache_dir=tmp_path / "c",
    )
    states = {t.state for t in study.trials}
    assert optuna.trial.TrialState.FAIL in states and len(study.trials) == 4
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert all("optics diverged" in t.user_attrs["fail_reason"] for t in failed)


def test_hopeless_trials_are_pruned(toy, tmp_path):
    # Any accuracy is below 1.01: every trial is pruned after its first epoch, with the reason kept.
    study = tune(
        _settings(toy, tmp_path, trials=2, prune_below=1.01, prune_after=1),
        out_dir=tmp_path / "o",
        cache_dir=tmp_path / "c",
    )
    assert all(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    assert all("validation accuracy" in t.user_attrs["prune_reason"] for t in study.trials)
    assert all(t.user_attrs["intermediate"] for t in study.trials)


def test_tpe_sampler_and_bad_settings(toy, tmp_path):
    study = tune(
        _settings(toy, tmp_path, trials=2, sampler="tpe"),
        out_dir=tmp_path / "o",
        cache_dir=tmp_path / "c",
    )
    assert type(study.sampler).__name__ == "TPESampler"
    with pytest.raises(ConfigError, match="sampler"):
        tune(_settings(toy, tmp_path, sampler="grid"), out_dir=tmp_path / "o")
    with pytest.raises(ConfigError, match="nothing to tune"):
        tune(_settings(toy, tmp_path, encoder="pixelate"), out_dir=tmp_path / "o")


def test_a_trial_left_running_by_a_stopped_driver_is_failed_at_the_next_start(toy, tmp_path):
    import sqlalchemy as sa

    from privbench.runs.tuning import LEFT_RUNNING, open_storage, open_study

    settings = _settings(toy, tmp_path, trials=2)
    storage = open_storage(settings)
    study = open_study(settings, storage)
    with pytest.warns(UserWarning, match="Heartbeat"):
        stale, live = study.ask(), study.ask()
    storage.record_heartbeat(stale._trial_id)
    storage.record_heartbeat(live._trial_id)  # another driver, still beating
    engine = sa.create_engine(settings.storage)
    with engine.begin() as connection:  # the stopped driver's last heartbeat, long ago
        connection.execute(
            sa.text(
                "UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00' WHERE trial_id = :id"
            ),
            {"id": stale._trial_id},
        )
    engine.dispose()

    resumed = tune(settings, out_dir=tmp_path / "out", cache_dir=tmp_path / "cache")
    states = {t.number: t.state for t in resumed.trials}
    assert states[stale.number] == optuna.trial.TrialState.FAIL
    assert resumed.trials[stale.number].user_attrs["fail_reason"] == LEFT_RUNNING
    assert states[live.number] == optuna.trial.TrialState.RUNNING  # left to its driver
    # The failed one counts as finished: one new trial makes the two asked for.
    assert [t.state for t in resumed.trials[2:]] == [optuna.trial.TrialState.COMPLETE]


# -- trials as Ray tasks --------------------------------------------------------------------------
def test_two_workers_run_trials_as_tasks_and_the_driver_stores_and_scores_them(
    toy, tmp_path, ray_workers
):
    import os

    from privbench.engine import ExecutionConfig
    from privbench.runs.tuning import trial_scores

    settings = _settings(toy, tmp_path, trials=4)
    study = tune(
        settings,
        out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        execution=ExecutionConfig(workers=2, cpus_per_cell=1),
    )
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4

    rows = ResultStore(f"sqlite:///{tmp_path / 'out' / 'results.db'}").dataframe()
    assert rows["cell_key"].is_unique
    tagged = rows[rows["study"] == settings.name]
    # Each trial's two cells are stored once, tagged with its study and trial.
    assert tagged.groupby("trial")["evaluation"].apply(sorted).to_dict() == {
        t.number: ["toy-attack", "toy-utility"] for t in study.trials
    }
    for t in study.trials:
        assert t.values == list(trial_scores(rows, settings.name, t.number))
        assert [t.user_attrs["utility"], t.user_attrs["privacy"]] == t.values
        assert t.user_attrs["alpha"] == pytest.approx(10 ** t.params["log10_alpha"])
    # The trials ran in Ray worker processes, two at a time, not in the driver.
    workers = {e["worker"] for e in tagged["execution"]}
    assert len(workers) >= 2 and all(not w.startswith(f"{os.getpid()}@") for w in workers)


def test_the_pruning_rule_applies_in_the_trial_task(toy, tmp_path, ray_workers):
    from privbench.engine import ExecutionConfig

    settings = _settings(toy, tmp_path, trials=2, prune_below=1.01, prune_after=1)
    study = tune(
        settings,
        out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        execution=ExecutionConfig(workers=2, cpus_per_cell=1),
    )
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert all("validation accuracy" in t.user_attrs["prune_reason"] for t in study.trials)
    assert all(t.user_attrs["intermediate"][0]["step"] == 1 for t in study.trials)
    rows = ResultStore(f"sqlite:///{tmp_path / 'out' / 'results.db'}").dataframe()
    assert set(rows["encoder"]) == {"identity"}  # a pruned trial stores no cells
