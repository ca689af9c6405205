"""The designer contract: a procedure that fits a learnable encoder's parameters under a privacy
weight α before the benchmark cells run.

A designer is one file in the ``designers/`` plugin folder (``privbench.designers``): a
:class:`Designer` subclass with its ``Config`` (a :class:`DesignerConfig` subclass: ``alpha``,
``seed`` and its own budget), registered with ``@register_designer("name")``. Its
:meth:`Designer.fit` trains the encoder **in place** — the runner then hashes the fitted weights
into the cache key and the result rows — and returns the design history.

What a designer may call on the encoder is declared on :class:`~privbench.api.encoder.Encoder`
(no-op by default): :meth:`~privbench.api.encoder.Encoder.set_hardness` (soft-quantizer
annealing), :meth:`~privbench.api.encoder.Encoder.project_` (keep it physically realizable after
each optimizer step) and :meth:`~privbench.api.encoder.Encoder.regularizers` (extra loss terms).
Designers train through the one loop :func:`privbench.nn.fit.fit` (one cycle = one epoch), which
checkpoints after every cycle and resumes from the checkpoint, and call ``ctx.report(step,
values)`` after every cycle: the tuner prunes hopeless trials there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from privbench.api.config import ComponentConfig, stable_hash, validate_config

if TYPE_CHECKING:
    from privbench.api.encoder import Encoder
    from privbench.api.evaluation import RunContext

#: What :meth:`Designer.fit` returns: one record per cycle (its metrics and ``time_s``), plain
#: floats so that the fitted-encoder cache (a weights-only ``torch.load``) can store it.
DesignHistory = list[dict[str, float]]


class DesignerConfig(ComponentConfig):
    """Options every designer accepts (subclasses add their budget and models)."""

    alpha: float = Field(1.0, ge=0, description="privacy weight α")
    seed: int = Field(0, description="seed of model initialization and batch order")


class Designer:
    """Base class of all designers: ``fit(encoder, data, ctx)`` fits the encoder in place.

    ``data`` is the benchmark dataset (or the designer's ``data:`` source of a composite); its
    parts are read with ``data.part(name)``. ``ctx.seed`` is the designer's ``seed`` and
    ``ctx.workdir`` the folder of its checkpoints. The encoder is left in evaluation mode.
    """

    Config: ClassVar[type[DesignerConfig]] = DesignerConfig
    registered_name: ClassVar[str] = ""

    def __init__(self, **config: Any) -> None:
        self.config = validate_config(self.Config, config, what=f"designer {self.name!r}")

    @property
    def name(self) -> str:
        return self.registered_name or type(self).__name__

    def config_hash(self) -> str:
        """Hash of name + config: with the encoder and the data, it identifies a fitted encoder."""
        return stable_hash({"designer": self.name, "config": self.config.model_dump(mode="json")})

    def fit(self, encoder: Encoder, data: Any, ctx: RunContext) -> DesignHistory:
        """Fit ``encoder``'s parameters in place; returns the per-cycle history."""
        raise NotImplementedError(f"{type(self).__name__} must implement fit()")
