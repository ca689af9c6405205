"""``synthfaces``: the embedded benchmark dataset, generated locally and deterministically.

Real face and caption datasets cannot be downloaded by privbench, so its default benchmark is
generated from a seed: face crops of synthetic identities (the face-ID attack and the face vs
no-face task of CAnOPIC, §4), non-face crops of objects, textures and hard negatives, and scenes
with faces, objects, boxes and reference captions (detection and 2PSC-style captioning).

Design (why it measures what it should):

- **Identities come in look-alike groups.** Each group shares the coarse traits (skin tone and
  hair colour from small palettes, hair style, head shape, beard); its members differ only in
  fine ones (eye size, shape, spacing, tilt and iris colour, eyebrows, nose, mouth, lips, ears,
  glasses, mole, moustache), and every two members of a group differ in at least
  :data:`MIN_FINE_DIFFERENCES` of them. A sharp camera therefore identifies everyone, while a
  blurred one keeps "there is a face" (a skin-coloured oval, hair on top, shoulders below) and
  at best the group, not the person.
- **Per-image nuisances** (roll ±15°, scale, translation, yaw, expression, gaze, lighting
  direction and level, clothes, background clutter, occasional occlusion, sensor noise) make
  identification a learning problem rather than template matching.
- **Real formats on disk.** Faces are written as a VGGFace2-style ImageFolder
  (``faces/<split>/n000001/0001_01.png``), non-faces as an ImageFolder by category, scenes as
  COCO instances and captions JSON (``scenes/annotations/{instances,captions}_<split>.json``,
  images in ``scenes/<split>/``), and read back through the same readers that read real data.
- **Cached and fingerprinted.** Everything lives under ``<cache>/synthfaces-<key>/`` where the
  key hashes the generator config and :data:`GENERATOR_VERSION`; a tensor file next to it makes
  the second load take about a second. The fingerprint hashes the tensors read back from disk.

Modules: :mod:`.config` (options, presets), :mod:`.sampling` (seeded draws), :mod:`.identities`,
:mod:`.crops` (faces and non-faces), :mod:`.scenes`, :mod:`.captions` (the caption grammar),
:mod:`.render` (the vectorized renderer), :mod:`.generate` (all splits in memory), :mod:`.files`
(written in real formats and read back) and :mod:`.dataset` (the registered ``synthfaces``
dataset and its cache).
"""

from privbench.data.synthfaces import render
from privbench.data.synthfaces.captions import NUMBER_WORDS, scene_captions
from privbench.data.synthfaces.config import (
    GENERATOR_VERSION,
    SYNTHFACES_PRESETS,
    SynthFacesConfig,
    describe_config,
    synthfaces_config,
)
from privbench.data.synthfaces.crops import (
    NONFACE_CATEGORIES,
    nonface_categories,
    render_face_crops,
    render_identity_sheet,
    render_nonface_crops,
    render_sample_face,
)
from privbench.data.synthfaces.dataset import (
    MANIFEST_FILE,
    STATS,
    TENSOR_FILE,
    SynthFacesAdapter,
    build_synthfaces,
    dataset_folder,
    dataset_key,
    load_or_generate,
)
from privbench.data.synthfaces.files import (
    SCENE_CATEGORIES,
    fingerprint_payload,
    read_synthfaces_folder,
    write_synthfaces,
)
from privbench.data.synthfaces.generate import GeneratedSplit, generate_synthfaces
from privbench.data.synthfaces.identities import (
    FINE_TRAIT_CHOICES,
    FINE_TRAIT_LEVELS,
    MIN_FINE_DIFFERENCES,
    identity_name,
    identity_table,
    sample_identities,
)
from privbench.data.synthfaces.sampling import NUISANCE_RANGES, sample_poses, stage_generator
from privbench.data.synthfaces.scenes import layout_scene, render_scenes

__all__ = [
    "FINE_TRAIT_CHOICES",
    "FINE_TRAIT_LEVELS",
    "GENERATOR_VERSION",
    "MANIFEST_FILE",
    "MIN_FINE_DIFFERENCES",
    "NONFACE_CATEGORIES",
    "NUISANCE_RANGES",
    "NUMBER_WORDS",
    "SCENE_CATEGORIES",
    "STATS",
    "SYNTHFACES_PRESETS",
    "TENSOR_FILE",
    "GeneratedSplit",
    "SynthFacesAdapter",
    "SynthFacesConfig",
    "build_synthfaces",
    "dataset_folder",
    "dataset_key",
    "describe_config",
    "fingerprint_payload",
    "generate_synthfaces",
    "identity_name",
    "identity_table",
    "layout_scene",
    "load_or_generate",
    "nonface_categories",
    "read_synthfaces_folder",
    "render",
    "render_face_crops",
    "render_identity_sheet",
    "render_nonface_crops",
    "render_sample_face",
    "render_scenes",
    "sample_identities",
    "sample_poses",
    "scene_captions",
    "stage_generator",
    "synthfaces_config",
    "write_synthfaces",
]
