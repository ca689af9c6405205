"""Name → class registries for encoders, tasks, attacks, benchmarks and datasets.

Modelled on timm / lm-evaluation-harness: components register with a decorator
(``@register_encoder("pixelate")``), are looked up by name, listed, and third-party packages
add their own through the Python entry-point groups ``privbench.encoders``, ``privbench.tasks``,
``privbench.attacks`` (an entry point names a module to import or an object to register).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from privbench.api.errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of component classes (or factories) of one kind.

    ``base``: the contract every registered class must subclass, as ``"module:Class"`` (imported
    on first use, so that the contracts may import this module); ``None`` for registries of
    factories (benchmark specs). Registering anything else raises a ConfigError naming the base.
    """

    def __init__(
        self,
        kind: str,
        entry_point_group: str,
        builtin_modules: tuple[str, ...] = (),
        base: str | None = None,
    ):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._builtin_modules = builtin_modules
        self._base_path = base
        self._items: dict[str, T] = {}
        self._loaded = False

    @property
    def base(self) -> type | None:
        """The class every registered component subclasses (``None``: any callable)."""
        if self._base_path is None:
            return None
        module, _, name = self._base_path.partition(":")
        return getattr(importlib.import_module(module), name)

    def _check(self, name: str, obj: Any) -> None:
        base = self.base
        if base is not None and not (isinstance(obj, type) and issubclass(obj, base)):
            raise ConfigError(
                f"Cannot register {_qualname(obj)} as {self.kind} {name!r}: a {self.kind} must be "
                f"a subclass of {base.__module__}.{base.__qualname__}."
            )
        if base is None and not callable(obj):
            raise ConfigError(
                f"Cannot register {obj!r} as {self.kind} {name!r}: it is not callable."
            )

    # -- registration -------------------------------------------------------------------
    def register(self, name: str, *, override: bool = False) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (lower-case, words joined by ``-``)."""
        if not name or name != name.strip() or " " in name:
            raise ConfigError(
                f"Invalid {self.kind} name {name!r}: use lower-case words joined by '-'."
            )

        def decorator(obj: T) -> T:
            self._check(name, obj)
            existing = self._items.get(name)
            if existing is not None and existing is not obj and not override:
                raise ConfigError(
                    f"A {self.kind} named {name!r} is already registered ({_qualname(existing)}); "
                    f"pick another name or pass override=True."
                )
            self._items[name] = obj
            try:
                obj.registered_name = name
            except (AttributeError, TypeError):  # a plain function may refuse attributes
                pass
            return obj

        return decorator

    # -- loading ------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)
        for entry_point in metadata.entry_points(group=self.entry_point_group):
            try:
                obj = entry_point.load()
            except Exception as error:  # a broken plugin must not break privbench itself
                import warnings

                warnings.warn(
                    f"privbench could not load {self.kind} plugin {entry_point.name!r} "
                    f"({entry_point.value}): {error}",
                    stacklevel=2,
                )
                continue
            if not isinstance(obj, type(importlib)) and entry_point.name not in self._items:
                # The entry point names an object rather than a module that registers itself.
                try:
                    self.register(entry_point.name)(obj)
                except ConfigError as error:
                    import warnings

                    warnings.warn(f"privbench skipped {self.kind} plugin: {error}", stacklevel=2)

    def refresh(self) -> None:
        """Scan the entry points again (e.g. after installing a plugin in a running process)."""
        self._loaded = False
        self._ensure_loaded()

    # -- lookup -------------------------------------------------------------------------
    def get(self, name: str) -> T:
        self._ensure_loaded()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(name)) from None

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._items

    def _unknown_message(self, name: str) -> str:
        known = sorted(self._items)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return (
            f"Unknown {self.kind} {name!r}.{hint} Known {self.kind}s: "
            f"{', '.join(known) or 'none'}. (`privbench list {self.kind}s` shows them; plugins "
            f"register more through the entry-point group {self.entry_point_group!r}.)"
        )


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


if TYPE_CHECKING:
    from privbench.api.adapter import DatasetAdapter
    from privbench.api.designer import Designer
    from privbench.api.encoder import Encoder
    from privbench.api.evaluation import Evaluation

ENCODERS: Registry[type[Encoder]] = Registry(
    "encoder", "privbench.encoders", ("privbench.encoders",), base="privbench.api.encoder:Encoder"
)
TASKS: Registry[type[Evaluation]] = Registry(
    "task", "privbench.tasks", ("privbench.tasks",), base="privbench.api.evaluation:Evaluation"
)
ATTACKS: Registry[type[Evaluation]] = Registry(
    "attack",
    "privbench.attacks",
    ("privbench.attacks",),
    base="privbench.api.evaluation:Evaluation",
)
#: Benchmark specs register factories returning a validated BenchmarkSpec.
BENCHMARKS: Registry[Callable[[], Any]] = Registry(
    "benchmark", "privbench.specs", ("privbench.specs",)
)
DESIGNERS: Registry[type[Designer]] = Registry(
    "designer",
    "privbench.designers",
    ("privbench.designers",),
    base="privbench.api.designer:Designer",
)
DATASETS: Registry[type[DatasetAdapter]] = Registry(
    "dataset",
    "privbench.datasets",
    ("privbench.data",),
    base="privbench.api.adapter:DatasetAdapter",
)


def register_encoder(name: str, *, override: bool = False):
    """Register an :class:`~privbench.api.encoder.Encoder` subclass under ``name``."""
    return ENCODERS.register(name, override=override)


def register_task(name: str, *, override: bool = False):
    """Register a utility :class:`~privbench.api.evaluation.Evaluation` subclass under ``name``."""
    return TASKS.register(name, override=override)


def register_attack(name: str, *, override: bool = False):
    """Register a privacy :class:`~privbench.api.evaluation.Evaluation` subclass under ``name``."""
    return ATTACKS.register(name, override=override)


def register_designer(name: str, *, override: bool = False):
    """Register a :class:`~privbench.designers.Designer` (fits a learnable
    encoder) under ``name``."""
    return DESIGNERS.register(name, override=override)


def list_designers() -> list[str]:
    return DESIGNERS.names()


def register_dataset(name: str, *, override: bool = False):
    """Register a :class:`~privbench.api.adapter.DatasetAdapter` subclass under ``name``."""
    return DATASETS.register(name, override=override)


def list_encoders() -> list[str]:
    return ENCODERS.names()


def list_tasks() -> list[str]:
    return TASKS.names()


def list_attacks() -> list[str]:
    return ATTACKS.names()


def list_benchmarks() -> list[str]:
    return BENCHMARKS.names()


def list_datasets() -> list[str]:
    return DATASETS.names()


def get_encoder(name: str, **config: Any):
    """Construct the encoder registered as ``name`` with ``config`` (validated;
    defaults otherwise)."""
    return ENCODERS.get(name)(**config)


def get_task(name: str, **config: Any):
    return TASKS.get(name)(**config)


def get_attack(name: str, **config: Any):
    return ATTACKS.get(name)(**config)


def get_evaluation(name: str, **config: Any):
    """A task or an attack by name (names are unique across both)."""
    if name in TASKS:
        return get_task(name, **config)
    if name in ATTACKS:
        return get_attack(name, **config)
    known = TASKS.names() + ATTACKS.names()
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownNameError(
        f"Unknown task or attack {name!r}.{hint} Known: {', '.join(sorted(known))}."
    )
