"""The mmdet detector backend (``backend: mmdet``, extra ``privbench[mmdet]``).

Any MMDetection 3.x config (a file path, or the name of a config bundled with mmdet such as
``faster-rcnn_r50_fpn_1x_coco``) is built with one class, the measurement's channel count, the
training set's standardization and no pre-trained initialization, and trained by the same loop
as the torchvision detectors. mmdet is imported only when used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from privbench.api.errors import ConfigError
from privbench.detection.base import FaceDetector
from privbench.detection.boxes import Detections
from privbench.detection.config import MMDET_EXTRA_HINT, DetectorConfig


def mmdet_available() -> bool:
    """Whether mmdet (and the compiled mmcv it imports) can be imported."""
    try:
        _import_mmdet()
    except ConfigError:
        return False
    return True


def _import_mmdet():
    """The mmdet and mmengine pieces the backend uses; a ConfigError naming the extra if absent."""
    try:
        import mmdet  # noqa: F401
        from mmdet.registry import MODELS
        from mmdet.structures import DetDataSample
        from mmdet.utils import register_all_modules
        from mmengine.config import Config
        from mmengine.structures import InstanceData
    except Exception as error:  # noqa: BLE001 (ImportError, or mmcv's version/ops errors)
        raise ConfigError(f"{MMDET_EXTRA_HINT} (importing mmdet failed: {error})") from None
    return MODELS, DetDataSample, register_all_modules, Config, InstanceData


def resolve_mmdet_config(name_or_path: str) -> Path:
    """A config file: the path itself, or the config of that name bundled with mmdet
    (``.mim/configs``)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    import mmdet

    bundled = Path(mmdet.__file__).parent / ".mim" / "configs"
    stem = Path(name_or_path).name.removesuffix(".py")
    matches = sorted(bundled.rglob(f"{stem}.py")) if bundled.is_dir() else []
    if not matches:
        raise ConfigError(
            f"mmdet config {name_or_path!r} is neither a file nor a config bundled with mmdet "
            f"(looked for {stem}.py under {bundled}). Pass a config file path or a bundled name "
            "such as 'faster-rcnn_r50_fpn_1x_coco' or 'retinanet_r50_fpn_1x_coco'."
        )
    return matches[0]


def _is_pretrained_initialization(key: str, value: Any) -> bool:
    """An ``init_cfg`` of type ``Pretrained``, or a ``pretrained`` checkpoint name."""
    if key == "init_cfg":
        return isinstance(value, dict) and value.get("type") == "Pretrained"
    return key == "pretrained" and isinstance(value, str)


def _adapt_mmdet_model_config(node: Any) -> Any:
    """One face class and no pre-trained initialization, throughout a model config (recursively)."""
    if isinstance(node, dict):
        for key in list(node.keys()):
            value = node[key]
            if key == "num_classes" and isinstance(value, int):
                node[key] = 1
            elif _is_pretrained_initialization(key, value):
                node[key] = None
            else:
                _adapt_mmdet_model_config(value)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _adapt_mmdet_model_config(item)
    return node


class MMDetFaceDetector(FaceDetector):
    """An mmdet 3.x detector from a config, behind the :class:`FaceDetector` interface.

    Measurements are resized (bilinear) so that their short side is ``input_size`` and boxes are
    scaled alike; the data preprocessor standardizes with the training set's statistics and pads
    to a multiple of 32. Predicted boxes are scaled back to measurement coordinates.
    """

    def __init__(self, config: DetectorConfig, in_channels: int) -> None:
        super().__init__(in_channels)
        MODELS, self._DetDataSample, register_all_modules, Config, self._InstanceData = (
            _import_mmdet()
        )
        register_all_modules(init_default_scope=True)
        cfg = Config.fromfile(str(resolve_mmdet_config(config.config or "")))
        model_cfg = cfg.model.to_dict()
        _adapt_mmdet_model_config(model_cfg)
        if "backbone" in model_cfg and in_channels != 3:
            model_cfg["backbone"]["in_channels"] = in_channels
        model_cfg["data_preprocessor"] = {
            "type": "DetDataPreprocessor",
            "mean": [0.0] * in_channels,
            "std": [1.0] * in_channels,
            "bgr_to_rgb": False,
            "pad_size_divisor": 32,
        }
        test_cfg = model_cfg.get("test_cfg") or {}
        if "rcnn" in test_cfg:
            test_cfg["rcnn"]["max_per_img"] = config.max_detections
            test_cfg["rcnn"]["score_thr"] = config.score_threshold
        if "max_per_img" in test_cfg:
            test_cfg["max_per_img"] = config.max_detections
            test_cfg["score_thr"] = config.score_threshold
        from mmengine.config import ConfigDict

        # mmdet's detectors read their sub-configs by attribute (``train_cfg.rpn``): a
        # ConfigDict, not a dict.
        self.model = MODELS.build(ConfigDict(model_cfg))
        self.model.init_weights()
        self.input_size = config.input_size

    @torch.no_grad()
    def _sync_standardization(self) -> None:
        """Push the standardization buffers into mmengine's preprocessor, which keeps its own
        mean/std out of the state dict (the buffers travel with the weights instead)."""
        preprocessor = self.model.data_preprocessor
        preprocessor.mean.copy_(self.input_mean.view(-1, 1, 1).to(preprocessor.mean))
        preprocessor.std.copy_(self.input_std.view(-1, 1, 1).to(preprocessor.std))

    def _batch(self, images: list[torch.Tensor], boxes: list[torch.Tensor] | None):
        self.check_images(images)
        inputs, samples, factors = [], [], []
        for index, image in enumerate(images):
            height, width = image.shape[-2:]
            factor = self.input_size / min(height, width)
            size = (max(1, round(height * factor)), max(1, round(width * factor)))
            resized = F.interpolate(
                image[None].float(), size=size, mode="bilinear", align_corners=False
            )[0]
            sx, sy = size[1] / width, size[0] / height
            sample = self._DetDataSample(
                metainfo={
                    "img_shape": size,
                    "ori_shape": size,
                    "scale_factor": (1.0, 1.0),
                    "img_id": index,
                }
            )
            if boxes is not None:
                instances = self._InstanceData()
                instances.bboxes = boxes[index].float() * boxes[index].new_tensor([sx, sy, sx, sy])
                instances.labels = torch.zeros(
                    boxes[index].shape[0], dtype=torch.long, device=image.device
                )
                sample.gt_instances = instances
            inputs.append(resized)
            samples.append(sample)
            factors.append((sx, sy))
        return {"inputs": inputs, "data_samples": samples}, factors

    def losses(
        self, images: list[torch.Tensor], boxes: list[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        self._sync_standardization()
        data, _ = self._batch(images, boxes)
        data = self.model.data_preprocessor(data, True)
        raw = self.model(**data, mode="loss")
        loss, _ = self.model.parse_losses(raw)
        return {"loss": loss}

    def detect(self, images: list[torch.Tensor]) -> Detections:
        self._sync_standardization()
        data, factors = self._batch(images, None)
        data = self.model.data_preprocessor(data, False)
        results = self.model(**data, mode="predict")
        detections = []
        for result, (sx, sy) in zip(results, factors):
            predicted = result.pred_instances
            keep = predicted.labels == 0
            boxes = predicted.bboxes[keep].float() / predicted.bboxes.new_tensor([sx, sy, sx, sy])
            detections.append({"boxes": boxes, "scores": predicted.scores[keep].float()})
        return detections
