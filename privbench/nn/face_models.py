"""Real, pre-trained face models that ship inside Python packages (the ``privbench[faces]`` extra).

Nothing is downloaded: every model file comes with a package installed from PyPI.

- ``opencv-haar``: OpenCV's Viola-Jones Haar cascade for frontal faces
  (``haarcascade_frontalface_default.xml`` from ``cv2.data.haarcascades``; present in
  ``opencv-python-headless`` < 5, which dropped the ``cv2.data`` cascades);
- ``dlib-hog``: dlib's HOG + linear SVM frontal face detector (``dlib.get_frontal_face_detector``,
  from the ``dlib-bin`` wheels);
- ``dlib-cnn``: dlib's max-margin (MMOD) CNN face detector, ``mmod_human_face_detector.dat``;
- the recognition model: dlib's 128-d face descriptor ResNet
  (``dlib_face_recognition_resnet_model_v1.dat``) on faces aligned by the 5-point landmark
  model (``shape_predictor_5_face_landmarks.dat``); descriptors of one person lie within about
  0.6 of each other (Euclidean).

The three ``.dat`` files come from the ``face-recognition-models`` sdist. Its ``__init__`` needs
``pkg_resources`` (gone from recent setuptools), so the files are located through the import
system without importing the package.

All detectors take an RGB ``uint8 (H, W, 3)`` array and return boxes ``(k, 4)`` as ``x0, y0, x1,
y1`` pixels (exclusive right/bottom edge). They were built for faces of about 80 px and more
(dlib's HOG and MMOD windows are 80×80), so callers present faces at about 100 px
(:data:`DETECTOR_FACE_PX`).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from privbench.api.errors import ConfigError, InputError, PrivbenchError

if TYPE_CHECKING:
    import torch

DETECTORS = ("opencv-haar", "dlib-hog", "dlib-cnn")
EXTRA = "privbench[faces]"
#: The face size, in pixels, at which callers present faces to the detectors.
DETECTOR_FACE_PX = 100
#: OpenCV's ``detectMultiScale`` defaults (scale step 1.1, 3 neighbours); the smallest face
#: searched is half the presented face size.
HAAR_SCALE_FACTOR = 1.1
HAAR_MIN_NEIGHBORS = 3
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
DAT_FILES = {
    "cnn_detector": "mmod_human_face_detector.dat",
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
    "landmarks": "shape_predictor_5_face_landmarks.dat",
}
DESCRIPTOR_SIZE = 128


class MissingFaceModelsError(PrivbenchError, ImportError):
    """A package of the ``privbench[faces]`` extra (or one of its model files) is not installed."""


def _missing(what: str, package: str, error: Exception | None = None) -> MissingFaceModelsError:
    detail = f" ({error})" if error is not None else ""
    return MissingFaceModelsError(
        f"The real face models need {what}, from the package {package!r}, which is not "
        f"installed{detail}. Install the optional extra: pip install "
        f"'{EXTRA}' (or, in a source checkout, pip install -e '.[faces]')."
    )


def _import(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise _missing(f"the Python module {module!r}", package, error) from None


def haar_cascade_path(name: str = HAAR_CASCADE) -> Path:
    """Path of one of OpenCV's packaged Haar cascades."""
    cv2 = _import("cv2", "opencv-python-headless<5")
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if folder is None:
        raise _missing(
            "OpenCV's packaged Haar cascades (cv2.data.haarcascades, dropped in OpenCV 5)",
            "opencv-python-headless<5",
        )
    path = Path(folder) / name
    if not path.is_file():
        available = sorted(p.name for p in Path(folder).glob("haarcascade_*.xml"))
        raise ConfigError(
            f"OpenCV has no Haar cascade {name!r}; packaged cascades: {', '.join(available)}."
        )
    return path


def dlib_model_path(key: str) -> Path:
    """Path of one of the ``face-recognition-models`` files (``cnn_detector``,
    ``recognition``, ``landmarks``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise _missing(
            "dlib's face model files (mmod detector, recognition ResNet, landmarks)",
            "face-recognition-models",
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / DAT_FILES[key]
        if path.is_file():
            return path
    raise _missing(f"the model file {DAT_FILES[key]!r}", "face-recognition-models")


def faces_extra_problem() -> str | None:
    """``None`` when every model of the extra loads; else the message saying what is missing."""
    try:
        load_face_models()
    except MissingFaceModelsError as error:
        return str(error)
    return None


def check_rgb(image: Any, who: str) -> np.ndarray:
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or image.shape[2] != 3
    ):
        raise InputError(
            f"{who} expects an RGB uint8 numpy array of shape (H, W, 3); got "
            f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}."
        )
    return np.ascontiguousarray(image)


@dataclass
class FaceModels:
    """The loaded packaged models; read-only (nothing here is ever trained or updated)."""

    haar: Any
    hog: Any
    cnn: Any
    landmarks: Any
    recognizer: Any
    files: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def detect(
        self, detector: str, image: np.ndarray, face_px: int = DETECTOR_FACE_PX
    ) -> np.ndarray:
        """Boxes ``(k, 4)`` float ``x0, y0, x1, y1`` found by ``detector`` in an RGB uint8 image."""
        image = check_rgb(image, f"face detector {detector!r}")
        if detector == "opencv-haar":
            import cv2

            gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            smallest = max(8, face_px // 2)
            found = self.haar.detectMultiScale(
                gray,
                scaleFactor=HAAR_SCALE_FACTOR,
                minNeighbors=HAAR_MIN_NEIGHBORS,
                minSize=(smallest, smallest),
            )
            boxes = [(x, y, x + w, y + h) for x, y, w, h in np.asarray(found).reshape(-1, 4)]
        elif detector == "dlib-hog":
            boxes = [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in self.hog(image, 0)]
        elif detector == "dlib-cnn":
            boxes = [
                (d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1)
                for d in self.cnn(image, 0)
            ]
        else:
            raise ConfigError(
                f"Unknown face detector {detector!r}; accepted: {', '.join(DETECTORS)}."
            )
        return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)

    def describe(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """The 128-d dlib descriptor of the face in ``box`` (aligned with the 5
        landmarks found in it)."""
        import dlib

        image = check_rgb(image, "face recognition model")
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self.landmarks(image, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.asarray(self.recognizer.compute_face_descriptor(image, shape), dtype=np.float32)


@lru_cache(maxsize=1)
def load_face_models() -> FaceModels:
    """Load every packaged face model once per process (raises MissingFaceModelsError
    naming the extra)."""
    cv2 = _import("cv2", "opencv-python-headless<5")
    dlib = _import("dlib", "dlib-bin")
    cascade = haar_cascade_path()
    haar = cv2.CascadeClassifier(str(cascade))
    if haar.empty():
        raise _missing(f"a readable Haar cascade ({cascade})", "opencv-python-headless<5")
    paths = {key: dlib_model_path(key) for key in DAT_FILES}
    return FaceModels(
        haar=haar,
        hog=dlib.get_frontal_face_detector(),
        cnn=dlib.cnn_face_detection_model_v1(str(paths["cnn_detector"])),
        landmarks=dlib.shape_predictor(str(paths["landmarks"])),
        recognizer=dlib.face_recognition_model_v1(str(paths["recognition"])),
        files={"opencv-haar": str(cascade), **{key: str(path) for key, path in paths.items()}},
        versions={"opencv": str(cv2.__version__), "dlib": str(dlib.__version__)},
    )


# -- several processes ---------------------------------------------------------------------------
def _detect_chunk(detector: str, views: list[np.ndarray]) -> list[np.ndarray]:
    models = load_face_models()
    return [models.detect(detector, view) for view in views]


def _describe_chunk(views: list[np.ndarray], box: tuple[float, float, float, float]) -> np.ndarray:
    models = load_face_models()
    return np.stack([models.describe(view, box) for view in views])


#: What a worker process may be asked to run (:mod:`privbench.nn.face_worker`).
WORKER_CALLS = {"detect": _detect_chunk, "describe": _describe_chunk}


def _in_workers(call: str, chunks: list[tuple]) -> list:
    """``WORKER_CALLS[call](*args)`` for each ``args`` of ``chunks``, one chunk per worker
    process (:mod:`privbench.nn.face_worker`, started once and kept)."""
    from privbench.nn.face_worker import worker_pool

    return worker_pool(len(chunks)).run(call, chunks)


def _chunks(views: list[np.ndarray], workers: int) -> list[list[np.ndarray]]:
    size = -(-len(views) // workers)
    return [views[start : start + size] for start in range(0, len(views), size)]


def detect_many(detector: str, views: list[np.ndarray], workers: int = 1) -> list[np.ndarray]:
    """:meth:`FaceModels.detect` on every view, in ``workers`` processes when more than one.

    dlib's CNN detector and recognition network hold Python's GIL while they run, so threads do
    not help (measured: 10.0 s for 60 views on one thread, 10.3 s on two); separate processes
    do. The results are the same in any process (no randomness in these models)."""
    if workers <= 1 or len(views) < 2:
        return _detect_chunk(detector, views)
    parts = _in_workers("detect", [(detector, chunk) for chunk in _chunks(views, workers)])
    return [boxes for part in parts for boxes in part]


def describe_many(
    views: list[np.ndarray], box: tuple[float, float, float, float], workers: int = 1
) -> np.ndarray:
    """:meth:`FaceModels.describe` of every view's ``box``, (N, 128), in ``workers`` processes
    when more than one (see :func:`detect_many`)."""
    if workers <= 1 or len(views) < 2:
        return _describe_chunk(views, box)
    return np.concatenate(
        _in_workers("describe", [(chunk, box) for chunk in _chunks(views, workers)])
    )


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one ``x0, y0, x1, y1`` box with each of ``boxes`` (k, 4)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    box = np.asarray(box, dtype=np.float64)
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def detector_view(image: torch.Tensor, scale: float, pad_px: int = 0) -> np.ndarray:
    """How an attacker shows an image to the detectors: ``(3, H, W)`` float [0, 1] → RGB uint8.

    The image (a measurement already on the scene's grid) is resampled bilinearly by ``scale``
    (so that faces reach the size the detectors were built for) and, for tight face crops,
    extended by ``pad_px`` pixels of its own edge on each side (the detectors' windows need some
    context around the face). The attacker may process a measurement however it likes; this
    keeps every encoder on the same footing.
    """
    import torch
    import torch.nn.functional as F

    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 3:
        raise InputError(
            "detector_view expects a (3, H, W) float tensor; got "
            f"{getattr(image, 'shape', type(image).__name__)}."
        )
    height, width = image.shape[-2:]
    size = (max(1, int(round(height * scale))), max(1, int(round(width * scale))))
    view = image.detach().float().cpu().unsqueeze(0)
    if size != (height, width):
        view = F.interpolate(view, size=size, mode="bilinear", align_corners=False)
    if pad_px > 0:
        view = F.pad(view, (pad_px, pad_px, pad_px, pad_px), mode="replicate")
    view = (view[0].clamp(0, 1) * 255).round().to(torch.uint8)
    return np.ascontiguousarray(view.permute(1, 2, 0).numpy())


# -- real faces shipped with scikit-image ------------------------------------------------------
#: The astronaut's face (eyebrows to chin, cheek to cheek) in scikit-image's 512×512
#: ``astronaut`` picture, ``x0, y0, x1, y1``, annotated by hand on a 16-px grid.
ASTRONAUT_FACE_BOX = (178.0, 72.0, 278.0, 175.0)
ASTRONAUT_SIDE = 512


def _skimage_data():
    _import("skimage", "scikit-image")
    return _import("skimage.data", "scikit-image")


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    return (np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def lfw_subset(count: int = 100, side: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-image's ``lfw_subset``: the first ``count`` of its 100 real LFW faces and of its 100
    non-faces (25×25 grey crops), each upsampled bilinearly to ``side`` px and repeated to RGB.

    Returns ``(faces, non_faces)``, each ``uint8 (count, 3, side, side)``. The face crops are
    tight: the face fills the crop.
    """
    import torch
    import torch.nn.functional as F

    if not 1 <= count <= 100:
        raise ConfigError(
            "lfw_subset holds 100 faces and 100 non-faces; "
            f"asked for count={count} (accepted: 1 to 100)."
        )
    crops = _to_uint8(np.asarray(_skimage_data().lfw_subset()))
    if crops.shape[0] != 200:
        raise ConfigError(
            f"scikit-image's lfw_subset should hold 200 crops; this version has {crops.shape[0]}."
        )
    grey = (
        torch.from_numpy(np.concatenate([crops[:count], crops[100 : 100 + count]]))
        .float()
        .unsqueeze(1)
    )
    resized = F.interpolate(grey, size=(side, side), mode="bilinear", align_corners=False)
    rgb = resized.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    return rgb[:count], rgb[count:]


def astronaut(side: int = 128) -> tuple[torch.Tensor, tuple[float, float, float, float]]:
    """scikit-image's ``astronaut`` (Eileen Collins) resized (area-averaged) to ``side`` px, and
    her face box on that grid. Returns ``(uint8 (1, 3, side, side), box)``."""
    import torch
    import torch.nn.functional as F

    picture = (
        torch.from_numpy(_to_uint8(np.asarray(_skimage_data().astronaut())))
        .permute(2, 0, 1)
        .float()
        .unsqueeze(0)
    )
    if picture.shape[-2:] != (ASTRONAUT_SIDE, ASTRONAUT_SIDE):
        raise ConfigError(
            "scikit-image's astronaut should be "
            f"{ASTRONAUT_SIDE}×{ASTRONAUT_SIDE}; got {tuple(picture.shape[-2:])}."
        )
    resized = (
        F.interpolate(picture, size=(side, side), mode="area")
        if side != ASTRONAUT_SIDE
        else picture
    )
    scale = side / ASTRONAUT_SIDE
    box = tuple(v * scale for v in ASTRONAUT_FACE_BOX)
    return resized.round().clamp(0, 255).to(torch.uint8), box
