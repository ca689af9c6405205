"""Optuna tuning of the privacy weight α (and any knob an encoder declares tunable).

A multi-objective study maximizes (utility, privacy), the normalized scores of
:mod:`privbench.runs.scores`. Each trial fits the encoder with a designer at the sampled α, runs its
task and attack cells through the ordinary runner — so the rows land in the same results store
as `privbench run`, tagged with study and trial — and is told the two scores. The clean
reference cells (``identity`` encoder) are run once, untagged, and shared by every trial.

- Parallel trials (``--workers N``): Optuna ask-and-tell in the driver
  (:class:`~privbench.runs.trials.StudyDriver`). Up to N trials are in flight, each one task of
  the run's engine (:func:`~privbench.runs.trials.run_trial`: a Ray task, or in process with
  ``--workers 1``, the same function). α and the tunables are sampled in the driver when a slot
  frees, so the sampler sees the trials finished so far, as in Optuna's own parallel
  ``optimize``. The driver is the results store's only writer: a trial returns its rows and the
  driver stores them before it tells Optuna the scores it computes from the store.
- Determinism: with the sampler seeded, ``--workers 1`` samples the same α sequence every time.
  With N > 1 the sequence depends on which trials had finished when each was asked (as in
  Optuna's parallel mode), so it differs from ``--workers 1``; but a trial's rows depend only on
  its α and tunables (and ``--cpus-per-cell``), never on the worker that ran it.
- Samplers: NSGA-II (default) or TPE; seeded.
- Resumable: the same storage URL and study name continue the study up to ``trials`` finished
  trials. The driver records a heartbeat for each trial in flight (:class:`Heartbeats`: Optuna
  runs its own heartbeat thread only inside ``study.optimize``); at the next start, a RUNNING
  trial without a heartbeat for ``HEARTBEAT_GRACE_S`` seconds was left by a driver that stopped
  (killed, machine lost) and is marked FAIL with ``fail_reason`` :data:`LEFT_RUNNING`
  (:func:`fail_left_running`), while the trials of another driver still working on the study
  keep beating and are left alone. A driver interrupted normally (Ctrl-C) fails its trials in
  flight at once.
- Failures: a trial that raises is recorded as failed with the reason (user attribute
  ``fail_reason``) and the study goes on.
- Pruning: Optuna's pruners do not support multi-objective studies, so privbench prunes by an
  explicit rule on the intermediate values the designer reports after every cycle: a trial
  whose utility model's validation accuracy is below ``prune_below`` after ``prune_after``
  cycles is hopeless (its encoder already destroyed the task) and is stopped as PRUNED. The
  rule runs in the trial's worker (:func:`~privbench.runs.trials.prune_reason`); every
  intermediate value is kept in the trial's user attribute ``intermediate``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from privbench.api.errors import ConfigError, PrivbenchError
from privbench.api.registry import ENCODERS
from privbench.engine import ExecutionConfig
from privbench.runs.scores import leaderboard_table
from privbench.runs.spec import BenchmarkSpec, ComponentSpec, resolve_spec

SAMPLERS = ("nsga2", "tpe")

#: The designer's intermediate values that measure utility, in order of preference.
UTILITY_SIGNALS = ("utility_val_accuracy", "val_accuracy")

#: ``fail_reason`` of a trial whose driver stopped while it ran (no heartbeat within the grace).
LEFT_RUNNING = "left running by a driver that stopped (no heartbeat within the grace period)"


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
    preset: str | None = None  # None: the benchmark's default preset
    #: NAME → path of the datasets the benchmark reads from disk (``--data NAME=PATH``).
    data_paths: dict[str, str] | None = None
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


#: Seconds between two heartbeats of a trial in flight, and how long a trial may go without one
#: before the next start fails it as left running by a driver that stopped.
HEARTBEAT_INTERVAL_S = 30
HEARTBEAT_GRACE_S = 90


def open_storage(settings: TuneSettings):
    """The study's Optuna RDB storage, with heartbeats (the driver records them:
    :class:`Heartbeats`)."""
    import warnings

    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                settings.storage,
                heartbeat_interval=HEARTBEAT_INTERVAL_S,
                grace_period=HEARTBEAT_GRACE_S,
            )
    except Exception as error:
        raise PrivbenchError(
            f"Cannot open the Optuna storage {settings.storage!r}: "
            f"{error}. Use a SQLAlchemy URL such as sqlite:///study.db."
        ) from None


def open_study(
    settings: TuneSettings, storage=None, log: Callable[[str], None] = lambda message: None
):
    """Create or load the study; trials left running by a driver that stopped are failed."""
    import warnings

    import optuna

    storage = storage or open_storage(settings)
    study = optuna.create_study(
        study_name=settings.name,
        storage=storage,
        directions=["maximize", "maximize"],
        sampler=make_sampler(settings.sampler, settings.seed),
        load_if_exists=True,
    )
    with warnings.catch_warnings():  # stable in practice but flagged experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["utility", "privacy"])
    stale = fail_left_running(study, storage)
    if stale:
        log(f"study {settings.name!r}: trial(s) {stale} {LEFT_RUNNING}: marked failed")
    return study


# -- the driver's side: heartbeats of the trials in flight ----------------------------------------
# Optuna exposes heartbeats only through ``study.optimize``; ask-and-tell uses the storage's
# ``record_heartbeat`` and ``_get_stale_trial_ids``, the study's ``_study_id`` and the trial's
# ``_trial_id`` (in every Optuna since 2.x; tests/test_tuning.py exercises each of them).


class Heartbeats:
    """Records a heartbeat for every trial in flight each ``interval`` seconds, from a daemon
    thread (use as a context manager)."""

    def __init__(self, storage: Any, interval: float) -> None:
        self._storage = storage
        self._interval = interval
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="privbench-heartbeats", daemon=True)

    def __enter__(self) -> Heartbeats:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def add(self, trial: Any) -> None:
        self._storage.record_heartbeat(trial._trial_id)
        with self._lock:
            self._ids.add(trial._trial_id)

    def remove(self, trial: Any) -> None:
        with self._lock:
            self._ids.discard(trial._trial_id)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                ids = list(self._ids)
            for trial_id in ids:
                try:
                    self._storage.record_heartbeat(trial_id)
                except Exception:  # a trial told meanwhile, a storage hiccup: the next beat
                    pass


def fail_left_running(study: Any, storage: Any) -> list[int]:
    """Mark FAIL (``fail_reason`` :data:`LEFT_RUNNING`) every RUNNING trial of ``study`` whose
    heartbeat is older than the storage's grace period: its driver stopped (killed, machine
    lost). Trials another live driver is running keep beating and are left alone. Returns the
    failed trials' numbers."""
    import optuna

    numbers = {t._trial_id: t.number for t in study.get_trials(deepcopy=False)}
    failed = []
    for trial_id in storage._get_stale_trial_ids(study._study_id):
        try:
            storage.set_trial_user_attr(trial_id, "fail_reason", LEFT_RUNNING)
            storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another driver failed it first
        failed.append(numbers.get(trial_id, trial_id))
    return failed


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
    execution: ExecutionConfig | dict | None = None,
):
    """Run (or continue) the study; returns it. See the module docstring.

    ``execution`` (:class:`~privbench.engine.ExecutionConfig`: workers, address, cpus and GPU
    share per cell) runs the clean reference cells like ``privbench run`` and keeps up to
    ``workers`` trials in flight, one engine task each."""
    from privbench.api.cache import ArtifactCache
    from privbench.engine import open_engine
    from privbench.runs.progress import ProgressFactory, RunDisplay
    from privbench.runs.runner import Runner, prepare_output_dir, resolve_device
    from privbench.runs.store import ResultStore, default_store_url
    from privbench.runs.trials import StudyDriver

    settings.validate()
    execution = ExecutionConfig.of(execution)
    base = resolve_spec(
        settings.benchmark, preset=settings.preset, data_paths=settings.data_paths, log=log
    )
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
    torch_device = resolve_device(device)
    storage = open_storage(settings)
    study = open_study(settings, storage, log)
    result_store = ResultStore(store or default_store_url(out_path))
    cache = ArtifactCache(cache_dir)
    progress = progress or ProgressFactory()
    display = RunDisplay(progress, log)
    engine = open_engine(
        execution,
        device=str(torch_device),
        cache_root=cache.root,
        progress=progress,
        log=log,
        sink=display,
    )
    try:
        with engine:  # one engine (one Ray start) for the reference cells and every trial
            clean = Runner(
                reference,
                store=result_store,
                device=torch_device,
                cache=cache,
                progress=progress,
                log=log,
                execution=execution,
            ).execute()
            StudyDriver(
                settings=settings,
                study=study,
                storage=storage,
                engine=engine,
                display=display,
                store=result_store,
                reference=reference,
                fingerprint=clean.data.fingerprint,
                device=str(torch_device),
                cache_root=str(cache.root),
                execution=execution,
                log=log,
            ).run()
    finally:
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
