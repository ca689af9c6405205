"""Low-level readers shared by the real-data adapters (and by ``synthfaces``, which writes the same
formats).

- :mod:`~privbench.data.formats.images`: decode + crop + resize of selected files on a thread
  pool into one ``uint8 (N, 3, H, W)`` tensor, with a content-addressed tensor cache.
- :mod:`~privbench.data.formats.folders`: the ImageFolder scan (one sub-folder per class).
- :mod:`~privbench.data.formats.coco`: COCO ``instances_*.json`` / ``captions_*.json`` readers.
- :mod:`~privbench.data.formats.files`: missing-file errors, annotation lines, JSON, with
  :class:`~privbench.api.errors.DataError` messages that name the file and line.
- :mod:`~privbench.data.formats.splits`: seeded hash orders (a file's place in a shuffle depends
  only on its own name and the seed) and labelled split tensors.
- :mod:`~privbench.data.formats.fingerprints`: content fingerprints of loaded datasets.
- :mod:`~privbench.data.formats.checks`: the :class:`CheckReport` of ``privbench data check``.
"""

from privbench.data.formats.checks import CheckReport
from privbench.data.formats.coco import (
    CocoBox,
    CocoCaptions,
    CocoImage,
    CocoInstances,
    read_coco_captions,
    read_coco_instances,
    read_coco_scenes,
    xywh_to_xyxy,
)
from privbench.data.formats.files import (
    EXAMPLES_IN_MESSAGES,
    AnnotationError,
    missing_files_error,
    parse_numbers,
    read_json,
    read_lines,
    require_files,
    require_path,
    stat_files,
)
from privbench.data.formats.fingerprints import (
    ContentHasher,
    fingerprint_labeled,
    fingerprint_labeled_splits,
    fingerprint_scene_splits,
    fingerprint_scenes,
    fingerprinted,
    hash_tensor,
    split_sizes,
    tensor_digest,
)
from privbench.data.formats.folders import (
    ImageFolderIndex,
    list_images,
    read_image_folder,
    scan_image_folder,
)
from privbench.data.formats.images import (
    IMAGE_EXTENSIONS,
    LOADER_VERSION,
    RESIZE_MODES,
    ImageRequest,
    LoadedImages,
    default_workers,
    images_cache_key,
    load_images,
)
from privbench.data.formats.splits import (
    concat_labeled,
    empty_labeled,
    hash_cap,
    hash_order,
    load_labeled_split,
    split_per_identity,
)

__all__ = [
    "EXAMPLES_IN_MESSAGES",
    "IMAGE_EXTENSIONS",
    "LOADER_VERSION",
    "RESIZE_MODES",
    "AnnotationError",
    "CheckReport",
    "CocoBox",
    "CocoCaptions",
    "CocoImage",
    "CocoInstances",
    "ContentHasher",
    "ImageFolderIndex",
    "ImageRequest",
    "LoadedImages",
    "concat_labeled",
    "default_workers",
    "empty_labeled",
    "fingerprint_labeled",
    "fingerprint_labeled_splits",
    "fingerprint_scene_splits",
    "fingerprint_scenes",
    "fingerprinted",
    "hash_cap",
    "hash_order",
    "hash_tensor",
    "images_cache_key",
    "list_images",
    "load_images",
    "load_labeled_split",
    "missing_files_error",
    "parse_numbers",
    "read_coco_captions",
    "read_coco_instances",
    "read_coco_scenes",
    "read_image_folder",
    "read_json",
    "read_lines",
    "require_files",
    "require_path",
    "scan_image_folder",
    "split_per_identity",
    "split_sizes",
    "stat_files",
    "tensor_digest",
    "xywh_to_xyxy",
]
