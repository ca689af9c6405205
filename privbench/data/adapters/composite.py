"""The ``composite`` dataset: one benchmark reading several registered datasets at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from privbench.api.adapter import DatasetAdapter, load_dataset
from privbench.api.config import ComponentConfig
from privbench.api.errors import ConfigError, DataError
from privbench.api.registry import register_dataset
from privbench.data.containers import SPLITS, BenchmarkData, LabeledSplits, SceneSplits
from privbench.data.formats import ContentHasher

DATASET = "composite"
PARTS = ("identities", "face_vs_noface", "scenes")


class SourceConfig(ComponentConfig):
    """One source of a composite: a registered dataset and its config."""

    name: str | None = Field(None, description="registered dataset (default: the source's label)")
    config: dict[str, Any] = Field(
        default_factory=dict, description="the dataset's config (path and options)"
    )


class SplitSources(ComponentConfig):
    """A part assembled split by split: the source label of each split."""

    train: str
    val: str
    test: str

    def source(self, split: str) -> str:
        """The source label of ``split``."""
        return {"train": self.train, "val": self.val, "test": self.test}[split]


class CompositeConfig(ComponentConfig):
    sources: dict[str, SourceConfig] = Field(
        ..., min_length=1, description="label → {name, config} of each dataset read"
    )
    parts: dict[Literal["identities", "face_vs_noface", "scenes"], str | SplitSources] = Field(
        default_factory=dict, description="part → source label, or {train, val, test} source labels"
    )
    name: str | None = Field(
        None,
        description="dataset name in the result rows (default: the sources' names joined by +)",
    )

    @model_validator(mode="after")
    def _parts_name_sources(self) -> CompositeConfig:
        for part, assembly in self.parts.items():
            labels = (
                [assembly]
                if isinstance(assembly, str)
                else [assembly.train, assembly.val, assembly.test]
            )
            unknown = [label for label in labels if label not in self.sources]
            if unknown:
                raise ValueError(
                    f"part {part!r} names source {unknown[0]!r}; the sources are: "
                    f"{', '.join(self.sources)}"
                )
        return self

    def dataset_of(self, label: str) -> str:
        return self.sources[label].name or label


@dataclass
class CompositeData(BenchmarkData):
    """A :class:`BenchmarkData` whose parts come from several sources, which stay reachable by
    label."""

    sources: dict[str, BenchmarkData] = field(default_factory=dict)

    def source(self, label: str) -> BenchmarkData:
        if label not in self.sources:
            raise DataError(
                f"The composite dataset has no source {label!r}; its sources are: "
                f"{', '.join(self.sources)}."
            )
        return self.sources[label]


def _assemble(part: str, assembly: str | SplitSources, sources: dict[str, BenchmarkData]):
    if isinstance(assembly, str):
        return sources[assembly].part(part)
    splits = {split: sources[assembly.source(split)].part(part)[split] for split in SPLITS}
    if part == "scenes":
        sizes = {split: tuple(scenes.images.shape[-2:]) for split, scenes in splits.items()}
        if len(set(sizes.values())) > 1:
            raise DataError(
                f"composite part 'scenes' joins splits of different picture sizes "
                f"({', '.join(f'{s} {v[0]}x{v[1]}' for s, v in sizes.items())}): "
                f"give its sources "
                f"({', '.join(sorted({assembly.train, assembly.val, assembly.test}))}) the same "
                f"image_size."
            )
        categories = {tuple(scenes.categories) for scenes in splits.values()}
        if len(categories) > 1:
            raise DataError(
                f"composite part 'scenes' joins splits with different box categories: "
                f"{sorted(categories)}."
            )
        return SceneSplits(**splits)
    names = {tuple(images.class_names) for images in splits.values()}
    if len(names) > 1:
        raise DataError(
            f"composite part {part!r} joins splits with different class names: {sorted(names)}."
        )
    return LabeledSplits(**splits)


@register_dataset(DATASET)
class CompositeAdapter(DatasetAdapter):
    """The ``composite`` dataset: one benchmark reading several real datasets at once.

    The paper presets need data from several adapters in one run: CAnOPIC reads VGGFace2 identities,
    ImageNet no-face crops, WIDER FACE scenes to train a detector and FDDB scenes to test it; 2PSC
    reads COCO captions and WIDER FACE faces. A composite names its **sources** (each a registered
    dataset with its config, loaded once) and assembles the parts the evaluations read
    (``identities``, ``face_vs_noface``, ``scenes``), each from one source or split by split::

        dataset:
          name: composite
          config:
            sources:
              faces: {name: vggface2, config: {path: ${vggface2}, nonfaces: {path: ${imagenet}}}}
              wider: {name: widerface, config: {path: ${widerface}, image_size: 448}}
              fddb: {name: fddb, config: {path: ${fddb}, image_size: 448}}
            parts:
              identities: faces
              face_vs_noface: faces
              scenes: {train: wider, val: wider, test: fddb}   # CAnOPIC: WIDER trains, FDDB tests

    An evaluation (or a designer) may instead read one source's own data with ``data: LABEL`` in its
    spec entry: 2PSC's captioning reads the ``scenes`` of COCO while its face-detection attacks read
    those of WIDER FACE (``data: wider``). A source label may omit ``name`` when it is the dataset's
    registered name (``coco: {config: {...}}``).

    Fingerprint: the SHA-256 of the sources' names and fingerprints and of the part assembly, so a
    change in any source (or in how parts are assembled) is a different dataset for the cache and
    the result rows. Scenes assembled from different sources must have one picture size (detection
    trains and tests at one resolution): give the sources the same ``image_size``.
    """

    Config = CompositeConfig
    config: CompositeConfig

    @classmethod
    def source_labels(cls, options: dict[str, Any]) -> list[str]:
        """The source labels a composite config declares (for validating ``data:`` in a spec)."""
        sources = options.get("sources") if isinstance(options, dict) else None
        return list(sources) if isinstance(sources, dict) else []

    def load(self, cache_dir: str | Path | None = None) -> CompositeData:
        """Several datasets in one benchmark: parts assembled from named sources (the paper
        presets)."""
        config = self.config
        sources: dict[str, BenchmarkData] = {}
        for label, source in config.sources.items():
            dataset = config.dataset_of(label)
            if dataset == DATASET:
                raise ConfigError(
                    f"composite source {label!r} is itself a composite; list its sources directly."
                )
            sources[label] = load_dataset(dataset, source.config, cache_dir)
        parts = {
            part: _assemble(part, assembly, sources) for part, assembly in config.parts.items()
        }
        hasher = ContentHasher(DATASET)
        hasher.json(sorted((label, data.name, data.fingerprint) for label, data in sources.items()))
        hasher.json(
            {
                part: a if isinstance(a, str) else a.model_dump()
                for part, a in sorted(config.parts.items())
            }
        )
        name = config.name or "+".join(dict.fromkeys(data.name for data in sources.values()))
        assembled = "; ".join(
            f"{part} from {_assembly_words(a)}" for part, a in config.parts.items()
        )
        described = " ".join(f"[{label}] {data.description}" for label, data in sources.items())
        description = (
            f"Composite of {', '.join(sources)}"
            + (f" ({assembled})" if assembled else "")
            + f". {described}"
        )
        return CompositeData(
            name=name,
            fingerprint=hasher.hexdigest(),
            identities=parts.get("identities"),
            face_vs_noface=parts.get("face_vs_noface"),
            scenes=parts.get("scenes"),
            description=description,
            sources=sources,
        )


def _assembly_words(assembly: str | SplitSources) -> str:
    """``"faces"`` or ``"train wider/val wider/test fddb"``."""
    if isinstance(assembly, str):
        return assembly
    return "/".join(f"{split} {assembly.source(split)}" for split in SPLITS)
