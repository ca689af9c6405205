"""Generation of every split in memory, chunk by chunk on a thread pool (deterministic)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from privbench.data.containers import SPLITS
from privbench.data.synthfaces.captions import scene_captions
from privbench.data.synthfaces.config import SynthFacesConfig
from privbench.data.synthfaces.crops import (
    nonface_categories,
    render_face_crops,
    render_nonface_crops,
)
from privbench.data.synthfaces.identities import sample_identities
from privbench.data.synthfaces.sampling import stage_generator, stage_rng
from privbench.data.synthfaces.scenes import layout_scene, render_scenes

#: Images rendered per batch: small enough for the working tensors to stay in the CPU cache
#: (elementwise rendering is memory-bound). The random draws depend on it, so it is fixed.
RENDER_CHUNK = 64
SCENE_CHUNK = 16


# -- generation of a whole dataset ---------------------------------------------------------------
@dataclass
class GeneratedSplit:
    """What the generator produced for one split, before it is written to disk."""

    faces: torch.Tensor  # uint8 (N, 3, S, S)
    face_labels: torch.Tensor  # identity index
    nonfaces: torch.Tensor  # uint8 (M, 3, S, S)
    nonface_categories: torch.Tensor  # index into NONFACE_CATEGORIES
    scenes: torch.Tensor  # uint8 (K, 3, T, T)
    scene_annotations: list[list[dict[str, Any]]]
    scene_captions: list[list[str]]


def _chunks(count: int, size: int) -> list[slice]:
    return [slice(start, min(count, start + size)) for start in range(0, count, size)]


class _SingleThreadedTorch:
    """Run torch ops on one intra-op thread (restored afterwards). The renderer issues many
    small, memory-bound elementwise ops; parallelism comes from rendering chunks concurrently
    instead, which is faster and does not collapse when the cores are shared with other work."""

    def __enter__(self) -> int:
        self.previous = torch.get_num_threads()
        torch.set_num_threads(1)
        return self.previous

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.previous)


def run_parallel(tasks: list, workers: int) -> list:
    """Call every zero-argument task, ``workers`` at a time (torch and PIL release the GIL); results
    in order."""
    if workers <= 1 or len(tasks) <= 1:
        return [task() for task in tasks]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda task: task(), tasks))


def generate_synthfaces(
    config: SynthFacesConfig, workers: int | None = None
) -> tuple[dict[str, GeneratedSplit], dict[str, torch.Tensor]]:
    """Generate every split in memory. Returns the splits and the identity traits.

    Deterministic given the config: every chunk of images draws from its own generator, seeded
    by (seed, part, split, chunk index), so the result does not depend on ``workers`` (default:
    torch's intra-op thread count) or on the order in which chunks finish.
    """
    with _SingleThreadedTorch() as threads:
        workers = workers or threads
        traits = sample_identities(config.n_identities, config.identities_per_group, config.seed)
        tasks: list = []
        plan: list[tuple[str, str, slice]] = []
        face_labels, categories, layouts = {}, {}, {}
        for split in SPLITS:
            labels = torch.arange(config.n_identities).repeat_interleave(
                config.faces_per_identity(split)
            )
            face_labels[split] = labels
            for index, rows in enumerate(_chunks(labels.numel(), RENDER_CHUNK)):
                generator = stage_generator(config.seed, "faces", split, index)
                tasks.append(
                    lambda rows=rows, labels=labels, g=generator: render_face_crops(
                        traits, labels[rows], config, g
                    )
                )
                plan.append(("faces", split, rows))
            categories[split] = nonface_categories(
                config.nonfaces(split), config, stage_generator(config.seed, "nonfaces", split)
            )
            for index, rows in enumerate(_chunks(categories[split].numel(), RENDER_CHUNK)):
                generator = stage_generator(config.seed, "nonfaces", split, index)
                tasks.append(
                    lambda rows=rows, c=categories[split], g=generator: render_nonface_crops(
                        c[rows], config, g
                    )
                )
                plan.append(("nonfaces", split, rows))
            rng = stage_rng(config.seed, "scenes", split)
            layouts[split] = [
                layout_scene(rng, config, traits) for _ in range(config.scenes(split))
            ]
            for index, rows in enumerate(_chunks(len(layouts[split]), SCENE_CHUNK)):
                generator = stage_generator(config.seed, "scenes", split, index)
                tasks.append(
                    lambda rows=rows, split_layouts=layouts[split], g=generator: render_scenes(
                        split_layouts[rows], traits, config, g
                    )
                )
                plan.append(("scenes", split, rows))
        results = run_parallel(tasks, workers)

    parts: dict[tuple[str, str], list] = {}
    for (part, split, _), result in zip(plan, results):
        parts.setdefault((part, split), []).append(result)
    crop, scene = config.crop_size_px, config.scene_size_px
    splits: dict[str, GeneratedSplit] = {}
    for split in SPLITS:
        faces = parts.get(("faces", split), [])
        nonfaces = parts.get(("nonfaces", split), [])
        scene_chunks = parts.get(("scenes", split), [])
        annotations = [a for _, chunk_annotations in scene_chunks for a in chunk_annotations]
        caption_rng = stage_rng(config.seed, "captions", split)
        captions = [
            scene_captions(
                a, layout["outdoor"], caption_rng, config.scene_size_px, config.captions_per_scene
            )
            for a, layout in zip(annotations, layouts[split])
        ]
        splits[split] = GeneratedSplit(
            faces=torch.cat(faces) if faces else torch.empty(0, 3, crop, crop, dtype=torch.uint8),
            face_labels=face_labels[split],
            nonfaces=torch.cat(nonfaces)
            if nonfaces
            else torch.empty(0, 3, crop, crop, dtype=torch.uint8),
            nonface_categories=categories[split],
            scenes=torch.cat([images for images, _ in scene_chunks])
            if scene_chunks
            else torch.empty(0, 3, scene, scene, dtype=torch.uint8),
            scene_annotations=annotations,
            scene_captions=captions,
        )
    return splits, traits
