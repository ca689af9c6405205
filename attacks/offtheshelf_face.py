"""Real off-the-shelf face models as attackers that are never fit (protocol ``offtheshelf``).

Does a real, pre-trained face detector still find a real face in the camera's measurement, and
does a real face-recognition network still tell who it is? The models are the ones packaged in
the ``privbench[faces]`` extra (:mod:`privbench.nn.face_models`): OpenCV's Haar cascade, dlib's HOG
and CNN (MMOD) detectors, and dlib's 128-d recognition ResNet. Nothing is trained, fine-tuned
or calibrated on the benchmark data: the attack reads no dataset part at all.

Real faces. The attack brings its own real images, shipped with scikit-image, and hands them
to the cell's encoder through :meth:`~privbench.api.evaluation.EvalInputs.encode_images` (the
runner encodes them; the attack sees only the measurements, like every other evaluation):

- ``lfw_subset``: 100 real LFW faces and 100 non-faces (25×25 grey crops), upsampled
  bilinearly to ``face_px`` (64) pixels, the encoders' smallest input, and repeated to RGB;
- ``astronaut``: the 512×512 portrait of Eileen Collins, shown to the camera at ``scene_px``
  (128) pixels, where her face is about 25 px wide, like the heads of the synthfaces crops;
- optionally ``folder``: the user's ImageFolder of real face crops, one sub-folder per person
  (e.g. LFW or VGGFace2 crops), read at ``face_px``.

The attacker's view. Each measurement is brought onto the scene's grid
(:func:`privbench.nn.imaging.to_common_grid`), resampled so that faces are about 100 px
(:data:`~privbench.nn.face_models.DETECTOR_FACE_PX`, the size these detectors are built for),
and face crops get a 25 % border of replicated edge pixels for context.

Metrics (fractions):

- ``detect_<detector>``: LFW faces for which the detector returns a box with IoU ≥ 0.3 with the
  face (the crop); ``false_alarm_<detector>``: LFW non-faces with any detection;
  ``astronaut_<detector>``: 1 if the astronaut's hand-annotated face box is found (IoU ≥ 0.3);
  ``detect_best``: the best detector's detection rate (the worst case);
- identification by nearest neighbour of the 128-d descriptors (Euclidean), computed on the
  face box of the view: ``id_top1_clean_gallery`` (the attacker holds clean photos, probes are
  measurements) and ``id_top1_encoded_gallery`` (gallery and probes both measurements);
  ``id_top1`` (the headline) is the better of the two. On ``lfw_subset``, which has no identity
  labels, every face is its own identity and the probe is the measurement of the *mirrored*
  face, so that no probe is ever the gallery image itself (instance re-identification among
  the 100 faces; chance 1/100). With ``folder`` the identification uses its people instead:
  the first ``folder_gallery_per_identity`` pictures of each person (by file name) form the
  gallery, the others are probes, and chance is 1 / people; the folder's faces also give
  ``folder_detect_<detector>``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from privbench.api.config import stable_hash
from privbench.api.errors import DataError
from privbench.api.evaluation import (
    EvalInputs,
    EvalResult,
    Evaluation,
    EvaluationConfig,
    MetricSpec,
    Protocol,
    RunContext,
)
from privbench.api.items import ItemScores
from privbench.api.registry import register_attack
from privbench.nn import face_models
from privbench.nn.imaging import INTENSITY_RANGE, to_common_grid

DetectorName = Literal["opencv-haar", "dlib-hog", "dlib-cnn"]
#: Border of replicated edge pixels around a tight face crop in the detector view, as a
#: fraction of the presented face size.
CROP_CONTEXT = 0.25
#: A detection matches a face if their boxes overlap by at least this IoU.
MATCH_IOU = 0.3


class OffTheShelfFaceConfig(EvaluationConfig):
    """Which packaged models and real images; nothing here configures any training."""

    detectors: list[DetectorName] = Field(
        default_factory=lambda: list(face_models.DETECTORS),
        min_length=1,
        description="real face detectors to run",
    )
    lfw_faces: int = Field(
        100,
        ge=2,
        le=100,
        description="how many of lfw_subset's 100 faces (and as many non-faces) to use",
    )
    astronaut: bool = Field(True, description="also run the detectors on scikit-image's astronaut")
    face_px: int = Field(
        64, ge=64, le=512, description="side (px) at which face crops are shown to the camera"
    )
    scene_px: int = Field(
        128,
        ge=64,
        le=512,
        description="side (px) at which the astronaut picture is shown to the camera",
    )
    folder: str | None = Field(
        None, description="an ImageFolder of real face crops, one sub-folder per person"
    )
    folder_center_crop_px: int | None = Field(
        None,
        ge=16,
        description="keep the central square of this side of "
        "each folder picture (LFW's 250-px pictures: 150)",
    )
    folder_gallery_per_identity: int = Field(
        1, ge=1, le=100, description="gallery pictures per person (the rest are probes)"
    )
    folder_max_per_identity: int | None = Field(
        None, ge=2, description="read at most this many pictures per person"
    )

    @field_validator("detectors")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each detector may be listed once")
        return value


def nearest_neighbour_hits(
    gallery: np.ndarray, gallery_ids: np.ndarray, probes: np.ndarray, probe_ids: np.ndarray
) -> np.ndarray:
    """Per probe: is its nearest gallery descriptor (Euclidean) of the probe's identity?"""
    distances = ((probes[:, None, :] - gallery[None, :, :]) ** 2).sum(-1)
    return gallery_ids[distances.argmin(1)] == probe_ids


def _digest(images: torch.Tensor) -> str:
    return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:32]


@register_attack("offtheshelf-face")
class OffTheShelfFace(Evaluation):
    # Kept on one line: `privbench list attacks` shows a component's first docstring line.
    """Real packaged face detectors and a real face-recognition network, never fit, on real faces."""  # noqa: E501

    Config = OffTheShelfFaceConfig
    role = "privacy"
    #: 2: measurements reach the detectors' view by the encoder's declared range, not by the
    #: maximum of their batch.
    version = "2"
    protocol = Protocol.OFFTHESHELF
    requires = ()
    metrics = {
        "id_top1": MetricSpec(
            True, "nearest-neighbour identification top-1 with dlib descriptors, the better gallery"
        ),
        "id_top1_clean_gallery": MetricSpec(
            True, "identification top-1: clean gallery, encoded probes"
        ),
        "id_top1_encoded_gallery": MetricSpec(
            True, "identification top-1: encoded gallery, encoded probes"
        ),
        "detect_best": MetricSpec(
            True, "real LFW faces found by the best real detector (fraction)"
        ),
        **{
            f"detect_{d}": MetricSpec(True, f"real LFW faces found by {d} (fraction)")
            for d in face_models.DETECTORS
        },
        **{
            f"false_alarm_{d}": MetricSpec(False, f"LFW non-faces on which {d} fires (fraction)")
            for d in face_models.DETECTORS
        },
        **{
            f"astronaut_{d}": MetricSpec(True, f"1 if {d} finds the astronaut's face")
            for d in face_models.DETECTORS
        },
        **{
            f"folder_detect_{d}": MetricSpec(True, f"faces of the folder found by {d} (fraction)")
            for d in face_models.DETECTORS
        },
    }
    headline = "id_top1"

    # -- views -------------------------------------------------------------------------------
    def _crop_views(
        self,
        clean: torch.Tensor,
        measured: torch.Tensor,
        value_range: tuple[float, float] = INTENSITY_RANGE,
    ) -> tuple[list[np.ndarray], tuple[float, ...]]:
        """Detector views of face crops (clean or encoded, on the clean grid) and the
        face box in them (``value_range``: the measurement's declared range)."""
        on_grid = to_common_grid(clean.float() / 255.0, measured, value_range).clamp(0, 1)
        side = clean.shape[-1]
        scale = face_models.DETECTOR_FACE_PX / side
        pad = int(round(CROP_CONTEXT * face_models.DETECTOR_FACE_PX))
        views = [face_models.detector_view(image, scale, pad) for image in on_grid]
        face = float(round(side * scale))
        return views, (pad, pad, pad + face, pad + face)

    def _found(self, detector: str, views: list[np.ndarray], face_box) -> np.ndarray:
        """Per view: does ``detector`` return a box matching ``face_box`` (None: any box at all)?
        Run in as many processes as the cell has CPU threads (:func:`face_models.detect_many`)."""
        hits = []
        for boxes in face_models.detect_many(detector, views, torch.get_num_threads()):
            if face_box is None:
                hits.append(len(boxes) > 0)
            else:
                hits.append(
                    bool(len(boxes))
                    and float(face_models.box_iou(face_box, boxes).max()) >= MATCH_IOU
                )
        return np.asarray(hits, dtype=bool)

    def _descriptors(self, views: list[np.ndarray], face_box) -> np.ndarray:
        return face_models.describe_many(views, face_box, torch.get_num_threads())

    def _clean_descriptors(self, models, clean: torch.Tensor, ctx: RunContext) -> np.ndarray:
        """Descriptors of the attacker's clean gallery (shared by every encoder's
        cell via the cache)."""
        key = stable_hash(
            {
                "images": _digest(clean),
                "face_px": face_models.DETECTOR_FACE_PX,
                "dlib": models.versions.get("dlib"),
                "recognition": Path(models.files["recognition"]).stat().st_size,
            }
        )
        key = f"clean-descriptors-{key}"

        def describe() -> np.ndarray:
            views, box = self._crop_views(clean, clean.float() / 255.0)
            return self._descriptors(views, box)

        if ctx.cache is None:
            return describe()
        # under the key's lock: concurrent cells compute the gallery once and share it
        built = []

        def build() -> torch.Tensor:
            built.append(describe())
            return torch.from_numpy(built[0])

        obtained = ctx.cache.obtain("offtheshelf", key, build)
        return obtained.value.numpy() if obtained.from_cache else built[0]

    # -- real faces of the user ----------------------------------------------------------------
    def _folder_faces(self) -> tuple[torch.Tensor, np.ndarray, list[str]]:
        from privbench.data.formats import ImageRequest, load_images, scan_image_folder

        cfg = self.config
        index = scan_image_folder(Path(cfg.folder).expanduser())
        paths, labels = [], []
        for label in range(len(index.classes)):
            mine = [p for p, person in zip(index.paths, index.labels) if person == label]
            if cfg.folder_max_per_identity is not None:
                mine = mine[: cfg.folder_max_per_identity]
            paths += mine
            labels += [label] * len(mine)
        requests = [ImageRequest(p, center_crop_px=cfg.folder_center_crop_px) for p in paths]
        loaded = load_images(requests, size=cfg.face_px, mode="stretch")
        return loaded.images, np.asarray(labels), index.classes

    def _gallery_split(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gallery and probe indices: the first pictures of each person, and the rest."""
        per_person = self.config.folder_gallery_per_identity
        gallery, probes = [], []
        for person in np.unique(labels):
            mine = np.flatnonzero(labels == person)
            if mine.size <= per_person:
                continue  # no probe left for this person
            gallery += mine[:per_person].tolist()
            probes += mine[per_person:].tolist()
        if len(set(labels[gallery].tolist())) < 2:
            raise DataError(
                f"offtheshelf-face: the folder {self.config.folder!r} needs at least 2 people with "
                f"more than {per_person} picture(s) each (gallery + probes) for identification."
            )
        return np.asarray(gallery), np.asarray(probes)

    # -- the attack ----------------------------------------------------------------------------
    def evaluate(self, inputs: EvalInputs, ctx: RunContext) -> EvalResult:
        cfg = self.config
        models = face_models.load_face_models()
        metrics: dict[str, float] = {}
        details: dict = {
            "models": {k: Path(v).name for k, v in models.files.items()},
            "versions": models.versions,
            "detector_face_px": face_models.DETECTOR_FACE_PX,
        }

        # Detection of real faces and false alarms on real non-faces.
        faces, non_faces = face_models.lfw_subset(cfg.lfw_faces, cfg.face_px)
        face_views, face_box = self._crop_views(
            faces, inputs.encode_images(faces), inputs.measurement_range
        )
        non_face_views, _ = self._crop_views(
            non_faces, inputs.encode_images(non_faces), inputs.measurement_range
        )
        for detector in cfg.detectors:
            metrics[f"detect_{detector}"] = float(
                self._found(detector, face_views, face_box).mean()
            )
            metrics[f"false_alarm_{detector}"] = float(
                self._found(detector, non_face_views, None).mean()
            )
        metrics["detect_best"] = max(metrics[f"detect_{d}"] for d in cfg.detectors)

        if cfg.astronaut:
            scene, box = face_models.astronaut(cfg.scene_px)
            measured = inputs.encode_images(scene)
            on_grid = to_common_grid(
                scene.float() / 255.0, measured, inputs.measurement_range
            ).clamp(0, 1)
            scale = face_models.DETECTOR_FACE_PX / max(box[2] - box[0], box[3] - box[1])
            view = face_models.detector_view(on_grid[0], scale)
            scaled_box = tuple(v * scale for v in box)
            for detector in cfg.detectors:
                metrics[f"astronaut_{detector}"] = float(
                    self._found(detector, [view], scaled_box)[0]
                )

        # Identification with the recognition network's descriptors.
        if cfg.folder is None:
            gallery_images = faces
            ids = np.arange(faces.shape[0])
            gallery_ids, probe_ids = ids, ids
            encoded_gallery = self._descriptors(face_views, face_box)
            mirrored = faces.flip(
                -1
            )  # the camera sees the mirrored face: never the gallery picture itself
            probe_views, box = self._crop_views(
                mirrored, inputs.encode_images(mirrored), inputs.measurement_range
            )
            probe_descriptors = self._descriptors(probe_views, box)
            details["identification_set"] = f"lfw_subset ({faces.shape[0]} faces, mirrored probes)"
        else:
            folder_images, labels, people = self._folder_faces()
            folder_views, box = self._crop_views(
                folder_images, inputs.encode_images(folder_images), inputs.measurement_range
            )
            for detector in cfg.detectors:
                metrics[f"folder_detect_{detector}"] = float(
                    self._found(detector, folder_views, box).mean()
                )
            gallery, probes = self._gallery_split(labels)
            gallery_images, gallery_ids, probe_ids = (
                folder_images[gallery],
                labels[gallery],
                labels[probes],
            )
            encoded_gallery = self._descriptors([folder_views[i] for i in gallery], box)
            probe_descriptors = self._descriptors([folder_views[i] for i in probes], box)
            details["identification_set"] = (
                f"folder {cfg.folder} ({len(set(gallery_ids.tolist()))} "
                f"of {len(people)} people, {len(probes)} probes)"
            )
        clean_gallery = self._clean_descriptors(models, gallery_images, ctx)
        hits = {
            gallery_name: nearest_neighbour_hits(
                descriptors, gallery_ids, probe_descriptors, probe_ids
            )
            for gallery_name, descriptors in (
                ("clean_gallery", clean_gallery),
                ("encoded_gallery", encoded_gallery),
            )
        }
        for gallery_name, found in hits.items():
            metrics[f"id_top1_{gallery_name}"] = float(found.mean())
        better = max(hits, key=lambda name: metrics[f"id_top1_{name}"])
        metrics["id_top1"] = metrics[f"id_top1_{better}"]
        chance = 1.0 / len(np.unique(gallery_ids))
        return EvalResult(
            metrics=metrics,
            chance=chance,
            details=details,
            items=ItemScores.per_item(hits[better].astype(np.float64)),
        )
