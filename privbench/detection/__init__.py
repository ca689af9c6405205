"""Face detection on sensor measurements: the shared detector backend, box mapping and scores.

Used by the utility task ``face-detection`` (CAnOPIC §4, experiment 3) and by the privacy attack
``face-detection-attack`` (the four experiments of 2PSC §3). Everything a detector sees is a
measurement; boxes are always *scored* in clean-image pixel coordinates.

- :mod:`~privbench.detection.config`: which detector and how it is trained;
- :mod:`~privbench.detection.boxes`: the box-mapping rule between scenes and measurements;
- :mod:`~privbench.detection.metrics`: COCO AP, precision-recall, FDDB's discrete ROC;
- :mod:`~privbench.detection.plots`: the protocols' curves in one figure (2PSC Fig. 4a);
- :mod:`~privbench.detection.base`, :mod:`~privbench.detection.torchvision_backend` (FCOS by
  default, and why) and :mod:`~privbench.detection.mmdet_backend`: the detectors;
- :mod:`~privbench.detection.training`: building, training (the one loop) and inference.
"""

from privbench.detection.base import FaceDetector
from privbench.detection.boxes import (
    Detections,
    DetectionSet,
    boxes_to_clean,
    boxes_to_measurement,
    face_boxes,
    measurement_scale,
)
from privbench.detection.config import (
    ARCHITECTURES,
    BACKBONES,
    DETECTION_EPOCH_SALT,
    DETECTOR_VERSION,
    FACE_LABEL,
    MMDET_EXTRA_HINT,
    DetectorConfig,
    DetectorTraining,
)
from privbench.detection.metrics import (
    coco_ap,
    detection_report,
    discrete_roc,
    interpolated_ap,
    match_detections,
    optimal_matches,
    precision_recall,
    tpr_at_false_positives,
)
from privbench.detection.mmdet_backend import (
    MMDetFaceDetector,
    mmdet_available,
    resolve_mmdet_config,
)
from privbench.detection.plots import curves_from_rows, plot_protocol_curves
from privbench.detection.torchvision_backend import LightBackbone, TorchvisionFaceDetector
from privbench.detection.training import (
    DetectorHistory,
    build_detector,
    detect,
    detect_in_clean_coordinates,
    fit_detector,
    load_weights_file,
    train_detector,
    validation_ap50,
)

__all__ = [
    "ARCHITECTURES",
    "BACKBONES",
    "DETECTION_EPOCH_SALT",
    "DETECTOR_VERSION",
    "FACE_LABEL",
    "MMDET_EXTRA_HINT",
    "DetectionSet",
    "Detections",
    "DetectorConfig",
    "DetectorHistory",
    "DetectorTraining",
    "FaceDetector",
    "LightBackbone",
    "MMDetFaceDetector",
    "TorchvisionFaceDetector",
    "boxes_to_clean",
    "boxes_to_measurement",
    "build_detector",
    "coco_ap",
    "curves_from_rows",
    "detect",
    "detect_in_clean_coordinates",
    "detection_report",
    "discrete_roc",
    "face_boxes",
    "fit_detector",
    "interpolated_ap",
    "load_weights_file",
    "match_detections",
    "optimal_matches",
    "measurement_scale",
    "mmdet_available",
    "plot_protocol_curves",
    "precision_recall",
    "resolve_mmdet_config",
    "tpr_at_false_positives",
    "train_detector",
    "validation_ap50",
]
