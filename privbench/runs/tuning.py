"""Optuna tuning of the privacy weight α (and any knob an encoder declares tunable).

A multi-objective study maximizes (utility, privacy), the normalized scores of
:mod:`privbench.runs.scores`. Each trial fits the encoder with a designer at the sampled α, runs its
task and attack cells through the ordinary runner — so the rows land in the same results store
as `privbench run`, tagged with study and trial — and returns the two scores. The clean
reference cells (``identity`` encoder) are run once, untagged, and shared by every trial.

- Samplers: NSGA-II (default) or TPE; seeded.
- Resumable: the same storage URL and study name continue the study up to ``trials`` finished
  trials. Trials left running by a killed process are marked failed (Optuna heartbeats).
- Failures: a trial that raises is recorded as failed with the reason (user attribute
  ``fail_reason``) and the study goes on.
- Pruning: Optuna's pruners do not support multi-objective studies, so privbench prunes by an
  explicit rule on the intermediate values the designer reports after every cycle: a trial
  whose utility model's validation accuracy is below ``prune_below`` after ``prune_after``
  cycles is hopeless (its encoder already destroyed the task) and is stopped as PRUNED. Every
  intermediate value is kept in the trial's user attribute ``intermediate``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from privbench.api.errors import ConfigError, PrivbenchError
from privbench.api.registry import ENCODERS
from privbench.runs.scores import leaderboard_table
from privbench.runs.spec import BenchmarkSpec, ComponentSpec, load_spec

SAMPLERS = ("nsga2", "tpe")
UTILITY_SIGNALS = ("utility_val_accuracy", "val_accuracy")


@dataclass
class TuneSettings:
    encoder: str
    task: str
    attack: str
    trials: int = 20
    storage: str = "sqlite:///study.db"
    study_name: str | None = None
    sampler: str = "nsga2"
    designer: str = "adversarial"
    designer_config: dict[str, Any] | None = None
    benchmark: Any = "synthfaces"  # a built-in name, a YAML path or a spec dict
    preset: str | None = "quick"
    alpha_min: float = 0.1
    alpha_max: float = 1000.0
    prune_below: float | None = 0.6
    prune_after: int = 2
    seed: int = 0

    def validate(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(
                f"Unknown sampler {self.sampler!r}; use one of {', '.join(SAMPLERS)}."
            )
        if not (0 < self.alpha_min < self.alpha_max):
            raise ConfigError(
                f"Need 0 < alpha_min < alpha_max; got {self.alpha_min} and {self.alpha_max}."
            )
        if self.trials < 1:
            raise ConfigError(f"trials must be at least 1; got {self.trials}.")
        if not ENCODERS.get(self.encoder).learnable:
            raise ConfigError(
                f"Encoder {self.encoder!r} has no learnable parameters, so there is nothing to "
                "tune; choose a learnable encoder (e.g. zernike-lens or a canopic-* configuration)."
            )

    @property
    def name(self) -> str:
        return self.study_name or f"{self.encoder}-{self.designer}-{self.task}-{self.attack}"


def _entry(spec: BenchmarkSpec, group: str, name: str) -> ComponentSpec:
    for entry in getattr(spec, group):
        if name in (entry.name, entry.display_name):
            return entry
    return ComponentSpec(name=name)


def make_sampler(name: str, seed: int):
    import optuna

    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def open_study(settings: TuneSettings):
    import warnings

    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                settings.storage, heartbeat_interval=30, grace_period=90
            )
    except Exception as error:
        raise PrivbenchError(
            f"Cannot open the Optuna storage {settings.storage!r}: "
            f"{error}. Use a SQLAlchemy URL such as sqlite:///study.db."
        ) from None
    study = optuna.create_study(
        study_name=settings.name,
        storage=storage,
        directions=["maximize", "maximize"],
        sampler=make_sampler(settings.sampler, settings.seed),
        load_if_exists=True,
    )
    with warnings.catch_warnings():  # both APIs are stable in practice but flagged experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["utility", "privacy"])
        optuna.storages.fail_stale_trials(study)
    return study


def sample_encoder_config(trial, encoder_class) -> dict[str, Any]:
    """Sample the knobs the encoder class declares in ``tunables`` (name → distribution spec)."""
    config = {}
    for name, spec in encoder_class.tunables.items():
        kind = spec.get("type", "float")
        if kind == "float":
            config[name] = trial.suggest_float(
                name, spec["low"], spec["high"], log=spec.get("log", False)
            )
        elif kind == "int":
            config[name] = trial.suggest_int(
                name, spec["low"], spec["high"], log=spec.get("log", False)
            )
        elif kind == "categorical":
            config[name] = trial.suggest_categorical(name, spec["choices"])
        else:
            raise ConfigError(
                f"{encoder_class.__name__}.tunables[{name!r}] has unknown type {kind!r}."
            )
    return config


def tune(
    settings: TuneSettings,
    *,
    out_dir: str | Path = "privbench-out",
    store: str | None = None,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    progress=None,
    log: Callable[[str], None] = lambda message: None,
):
    """Run (or continue) the study; returns it. See the module docstring."""
    import optuna

    from privbench.api.cache import ArtifactCache
    from privbench.runs.runner import Runner, prepare_output_dir, resolve_device
    from privbench.runs.store import ResultStore, default_store_url

    settings.validate()
    base = load_spec(settings.benchmark).resolve(settings.preset)
    task, attack = _entry(base, "tasks", settings.task), _entry(base, "attacks", settings.attack)
    reference = base.model_copy(
        update={
            "encoders": [ComponentSpec(name="identity")],
            "tasks": [task],
            "attacks": [attack],
            "seeds": [settings.seed],
        }
    )
    out_path = prepare_output_dir(out_dir)
    result_store = ResultStore(store or default_store_url(out_path))
    torch_device = resolve_device(device)
    cache = ArtifactCache(cache_dir)
    Runner(
        reference, store=result_store, device=torch_device, cache=cache, progress=progress, log=log
    ).execute()

    study = open_study(settings)
    encoder_class = ENCODERS.get(settings.encoder)

    def objective(trial) -> tuple[float, float]:
        alpha = 10 ** trial.suggest_float(
            "log10_alpha", math.log10(settings.alpha_min), math.log10(settings.alpha_max)
        )
        trial.set_user_attr("alpha", alpha)
        encoder_config = sample_encoder_config(trial, encoder_class)
        label = f"{settings.encoder} [{settings.name} #{trial.number}]"
        entry = ComponentSpec(
            name=settings.encoder,
            config=encoder_config,
            label=label,
            designer=ComponentSpec(
                name=settings.designer, config={**(settings.designer_config or {}), "alpha": alpha}
            ),
        )
        trial_spec = reference.model_copy(update={"encoders": [entry]})
        intermediate: list[dict[str, float]] = []

        def report(step: int, values: dict[str, float]) -> None:
            intermediate.append({"step": step, **values})
            trial.set_user_attr("intermediate", intermediate)
            signal = next((values[k] for k in UTILITY_SIGNALS if k in values), None)
            if (
                settings.prune_below is not None
                and signal is not None
                and step >= settings.prune_after
                and signal < settings.prune_below
            ):
                reason = (
                    f"utility validation accuracy {signal:.3f} < {settings.prune_below} "
                    f"after {step} designer cycles"
                )
                trial.set_user_attr("prune_reason", reason)
                raise optuna.TrialPruned(reason)

        runner = Runner(
            trial_spec,
            store=result_store,
            device=torch_device,
            cache=cache,
            progress=progress,
            log=log,
            study=settings.name,
            trial=trial.number,
            design_report=report,
        )
        try:
            report_ = runner.execute()
            if report_.failures:
                raise PrivbenchError(
                    "; ".join(f"{name}: {message}" for name, message in report_.failures)
                )
            utility, privacy = trial_scores(report_.results, settings.name, trial.number)
        except optuna.TrialPruned:
            raise
        except Exception as error:
            trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}")
            raise
        trial.set_user_attr("utility", utility)
        trial.set_user_attr("privacy", privacy)
        return utility, privacy

    finished_states = (
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.FAIL,
    )
    done = sum(1 for t in study.trials if t.state in finished_states)
    remaining = max(0, settings.trials - done)
    if remaining:
        log(f"study {settings.name!r}: {done} trials finished, running {remaining} more")
        study.optimize(objective, n_trials=remaining, catch=(Exception,), gc_after_trial=True)
    else:
        log(
            f"study {settings.name!r} already has {done} "
            f"finished trials (asked for {settings.trials})"
        )
    result_store.close()
    return study


def trial_scores(rows: pd.DataFrame, study: str, trial: int) -> tuple[float, float]:
    """(utility, privacy) of one trial's encoder, normalized against the clean reference rows."""
    relevant = rows[
        (rows["encoder"] == "identity") | ((rows["study"] == study) & (rows["trial"] == trial))
    ]
    table = leaderboard_table(relevant)
    mine = table[(table["study"] == study) & (table["trial"] == trial)]
    if mine.empty:
        raise PrivbenchError(f"trial {trial} of study {study!r} produced no result rows")
    utility, privacy = float(mine["utility"].iloc[0]), float(mine["privacy"].iloc[0])
    if math.isnan(utility) or math.isnan(privacy):
        raise PrivbenchError(
            "the trial's normalized scores are undefined (no clean "
            "reference, or the attack does not beat chance on clean data)"
        )
    return utility, privacy


def trials_frame(study) -> pd.DataFrame:
    """One row per trial: number, state, α, utility, privacy, whether on Optuna's
    Pareto front, reason."""
    best = (
        {t.number for t in study.best_trials}
        if any(t.values for t in study.trials if t.values)
        else set()
    )
    records = []
    for t in study.trials:
        records.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "alpha": t.user_attrs.get("alpha"),
                "utility": t.values[0] if t.values else math.nan,
                "privacy": t.values[1] if t.values else math.nan,
                "optuna_front": t.number in best,
                "reason": t.user_attrs.get("fail_reason") or t.user_attrs.get("prune_reason") or "",
            }
        )
    return pd.DataFrame.from_records(records)
