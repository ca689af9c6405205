"""The dataset contract: how a dataset is configured, loaded and (when read from disk) checked.

A dataset is one :class:`DatasetAdapter` subclass in one file, registered with
:func:`~privbench.api.registry.register_dataset`. It declares ``Config`` (its pydantic options,
validated from the spec's ``dataset.config``) and implements :meth:`DatasetAdapter.load`, which
returns the :class:`~privbench.data.containers.BenchmarkData` the runner reads. A dataset read
from a published folder subclasses :class:`FolderAdapter` instead: its ``Config`` extends
:class:`AdapterConfig` (the folder, decoding threads, the tensor cache), it declares the folder
``layout`` it expects (shown by ``privbench data layout`` and by missing-path errors) and
implements :meth:`FolderAdapter.check` (what ``privbench data check`` prints). A dataset assembled
from other datasets declares the labels of its sources (:meth:`DatasetAdapter.source_labels`), which
an evaluation names with ``data: LABEL``.

The runner, the CLI and the composite dataset all go through :func:`dataset_adapter` and
:func:`load_dataset`.
"""

from __future__ import annotations

import inspect
import os
import textwrap
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from privbench.api.config import ComponentConfig, validate_config
from privbench.api.errors import DataError

if TYPE_CHECKING:
    from typing import Self

    from privbench.data.containers import BenchmarkData
    from privbench.data.formats import CheckReport


#: Per-image size limit of every folder adapter (``max_image_pixels``): a source image of more
#: pixels is downscaled while it is decoded where the format allows it (JPEG's DCT scaling, to
#: the resolution the output needs) and refused with a DataError naming the file otherwise, so
#: one huge file cannot take a run's memory (a decoded 8000×8000 RGB picture alone is 192 MB,
#: and resampling needs several times that).
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000


def dataset_cache_root(cache_dir: str | Path | None) -> Path:
    """``cache_dir`` or the default ``$PRIVBENCH_CACHE/datasets``."""
    from privbench.api.cache import default_cache_root

    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return default_cache_root() / "datasets"


class DatasetAdapter(ABC):
    """Base class of every dataset: validated options in, :class:`BenchmarkData` out.

    Subclasses set ``Config`` and implement :meth:`load`; an instance holds one validated config
    (build it with :meth:`from_options`). ``layout`` stays ``None`` for datasets that are not read
    from a folder (generated ones, composites).
    """

    Config: ClassVar[type[ComponentConfig]] = ComponentConfig
    #: The folder layout the dataset expects on disk; None: the dataset is not read from a folder.
    layout: ClassVar[str | None] = None
    #: Set by :func:`~privbench.api.registry.register_dataset`.
    registered_name: ClassVar[str] = ""

    def __init__(self, config: ComponentConfig):
        self.config = config

    @property
    def name(self) -> str:
        return self.registered_name or type(self).__name__

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Self:
        """An adapter for ``options`` (a ConfigError names a bad or unknown field)."""
        name = cls.registered_name or cls.__name__
        return cls(validate_config(cls.Config, dict(options), what=f"dataset {name!r}"))

    @classmethod
    def source_labels(cls, options: dict[str, Any]) -> list[str] | None:
        """Labels of the sources ``data: LABEL`` may name, read from unvalidated ``options``;
        None for a dataset that is not assembled from sources."""
        return None

    @abstractmethod
    def load(self, cache_dir: str | Path | None = None) -> BenchmarkData:
        """The data the runner reads; ``cache_dir``: the dataset cache root (default
        ``$PRIVBENCH_CACHE/datasets``)."""

    def check(self) -> CheckReport:
        """What ``privbench data check`` reports about the dataset's folder."""
        raise DataError(
            f"Dataset {self.name!r} is not read from a folder (it is generated, or assembled "
            f"from other datasets), so there is nothing to check; check the datasets it reads."
        )


class AdapterConfig(ComponentConfig):
    """Options every folder adapter accepts (the path, decoding threads, the tensor cache)."""

    path: str = Field(..., description="the dataset's root folder")
    workers: int | None = Field(
        None, ge=1, le=64, description="decoding threads (default: the CPUs available, at most 16)"
    )
    cache: bool = Field(
        True,
        description="write the decoded, resized images once to image stores (.npy, memory-mapped) "
        "content-addressed under the cache dir; false: decode into memory on every load",
    )
    max_image_pixels: int = Field(
        DEFAULT_MAX_IMAGE_PIXELS,
        ge=1,
        description="per-image size limit: a larger source file is decoded downscaled (JPEG) "
        "or refused with an error naming it",
    )

    @property
    def root(self) -> Path:
        return Path(self.path).expanduser()

    def cache_root(self, cache_dir: str | Path | None) -> Path | None:
        return dataset_cache_root(cache_dir) if self.cache else None


class FolderAdapter(DatasetAdapter):
    """A dataset read from its published folder: ``Config`` extends :class:`AdapterConfig`,
    ``layout`` is the expected folder tree, :meth:`check` inspects a folder without decoding."""

    Config: ClassVar[type[AdapterConfig]] = AdapterConfig
    layout: ClassVar[str] = ""
    config: AdapterConfig

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Self:
        """Validate ``options``; the ``path`` is required and must be a folder (DataError)."""
        values = dict(options)
        name = cls.registered_name or cls.__name__
        if isinstance(values.get("path"), os.PathLike):
            values["path"] = os.fspath(values["path"])
        if values.get("path") in (None, ""):
            raise DataError(
                f"Dataset {name!r} reads the published dataset from disk and needs its folder: "
                f"pass path=/data/{name} (in a spec: dataset: {{name: {name}, config: "
                f"{{path: ...}}}}; check it with `privbench data check {name} PATH`)."
            )
        adapter = super().from_options(values)
        if not adapter.config.root.is_dir():
            raise DataError(
                f"Dataset {name!r}: folder {str(adapter.config.root)!r} does not exist or is not "
                f"a folder."
            )
        return adapter

    @classmethod
    def documentation(cls) -> str:
        """The adapter's docstring with its expected layout after the first paragraph (what
        ``privbench data layout`` prints)."""
        title, _, protocol = (inspect.getdoc(cls) or cls.__name__).partition("\n\n")
        layout = textwrap.indent(cls.layout.strip("\n"), "    ")
        return f"{title}\n\nExpected layout::\n\n{layout}\n\n{protocol}".rstrip()

    def cache_root(self, cache_dir: str | Path | None) -> Path | None:
        """Where the resized tensors are cached (None with ``cache: false``)."""
        return self.config.cache_root(cache_dir)

    def report(self) -> CheckReport:
        """An empty check report for this dataset's folder."""
        from privbench.data.formats import CheckReport

        return CheckReport(self.name, self.config.root)

    @abstractmethod
    def check(self) -> CheckReport:
        """Annotation syntax, counts per split and the files the adapter would read that are
        missing (looked up, not decoded)."""


def dataset_adapter(name: str, options: dict[str, Any] | None = None) -> DatasetAdapter:
    """The registered dataset ``name`` configured with ``options`` (validated)."""
    from privbench.api.registry import DATASETS

    return DATASETS.get(name).from_options(options or {})


def load_dataset(
    name: str, config: dict[str, Any] | None = None, cache_dir: str | Path | None = None
) -> BenchmarkData:
    """The data of the registered dataset ``name`` with ``config`` (a spec's ``dataset``)."""
    return dataset_adapter(name, config).load(cache_dir)
