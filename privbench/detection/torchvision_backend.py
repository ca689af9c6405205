"""The torchvision detector backend: FCOS (default), RetinaNet or Faster R-CNN on measurements.

**Default detector: FCOS** (Tian et al., ICCV 2019), on a light residual backbone with a feature
pyramid at strides 4, 8 and 16 of the detector input. Why FCOS for small faces:

- it is anchor-free: every feature-map location inside a face (within 1.5 strides of its
  centre) is a positive sample, so a 12-pixel face gets several positives on the stride-4
  level. Anchor detectors (Faster R-CNN, RetinaNet) label an anchor positive only when its IoU
  with the face exceeds a threshold, and small faces match few or no anchors unless the anchor
  sizes and strides are tuned to them (the small-face anchor problem S³FD describes);
- it is one stage: no RoI pooling of a 7×7 grid out of a face a few feature cells wide, and no
  second network to train, which keeps it trainable from scratch on 2 CPU cores;
- its head depth is a parameter (two convolutions per branch here instead of four), and
  SSDlite's fixed 300×300 design and coarse feature maps (stride ≥ 16) suit small faces least.

Faster R-CNN (the detector of CAnOPIC's experiment 3) and RetinaNet are available through
``architecture``, with anchors sized to faces (two scales per level, 3 and 3·√2 strides, aspect
h/w = 1.1); ``backbone`` ``resnet18``/``resnet50`` builds a ResNet-FPN for large data on a GPU.
Weights are random (``weights=None``, ``weights_backbone=None`` in torchvision's terms);
nothing is downloaded. Inside the detector, measurements are resized so that their short side
is ``input_size``; torchvision undoes that itself and returns boxes in measurement pixels.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from privbench.detection.base import FaceDetector
from privbench.detection.boxes import Detections
from privbench.detection.config import FACE_LABEL, DetectorConfig
from privbench.nn.classifiers import conv_bn_relu


class _ResidualBlock(nn.Module):
    """ResNet basic block (two 3×3 conv-BN layers and the projected shortcut).

    It computes what :class:`privbench.nn.classifiers.BasicBlock` computes, with the same
    initial draws, but its state-dict keys (``body.0``, ``body.1``, ``body.3``, ``body.4``)
    differ from BasicBlock's (``conv1``, ``bn1``, ``conv2``, ``bn2``): detector weights files
    and cached detectors are stored under these keys, so the block stays.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class LightBackbone(nn.Module):
    """A stride-2 stem and three residual stages (strides 4, 8, 16) under a feature pyramid."""

    def __init__(self, in_channels: int, widths: Sequence[int], fpn_channels: int) -> None:
        from torchvision.ops import FeaturePyramidNetwork

        super().__init__()
        self.stem = conv_bn_relu(in_channels, widths[0], 3, 2)
        self.stages = nn.ModuleList(
            _ResidualBlock(widths[i], widths[i + 1], 2) for i in range(len(widths) - 1)
        )
        self.fpn = FeaturePyramidNetwork(list(widths[1:]), fpn_channels)
        self.out_channels = fpn_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        x = self.stem(x)
        features: OrderedDict[str, torch.Tensor] = OrderedDict()
        for index, stage in enumerate(self.stages):
            x = stage(x)
            features[str(index)] = x
        return self.fpn(features)


def _resnet_backbone(name: str, in_channels: int, fpn_channels: int) -> nn.Module:
    """A randomly initialised torchvision ResNet (weights=None) under a feature pyramid (strides
    4–32)."""
    import torchvision
    from torchvision.models.detection.backbone_utils import BackboneWithFPN

    build, widths = {
        "resnet18": (torchvision.models.resnet18, [64, 128, 256]),
        "resnet50": (torchvision.models.resnet50, [256, 512, 1024]),
    }[name]
    resnet = build(weights=None)
    if in_channels != 3:
        resnet.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return BackboneWithFPN(
        resnet, {"layer1": "0", "layer2": "1", "layer3": "2"}, widths, fpn_channels
    )


def _feature_strides(backbone: nn.Module, in_channels: int, size: int) -> list[int]:
    """Strides of the backbone's output maps, probed with one blank image of ``size``×``size``."""
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        features = backbone(torch.zeros(1, in_channels, size, size))
    backbone.train(was_training)
    return [max(1, round(size / f.shape[-1])) for f in features.values()]


class TorchvisionFaceDetector(FaceDetector):
    """A torchvision detector behind a per-channel standardization of the measurement.

    The standardization is :class:`FaceDetector`'s pair of buffers; the torchvision transform
    itself only resizes (its mean 0, std 1).
    """

    def __init__(self, config: DetectorConfig, in_channels: int) -> None:
        from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
        from torchvision.models.detection.anchor_utils import AnchorGenerator
        from torchvision.models.detection.fcos import FCOSHead
        from torchvision.models.detection.retinanet import RetinaNetHead

        super().__init__(in_channels)
        if config.backbone == "light":
            backbone = LightBackbone(in_channels, config.widths, config.fpn_channels)
        else:
            backbone = _resnet_backbone(config.backbone, in_channels, config.fpn_channels)
        strides = _feature_strides(backbone, in_channels, config.input_size)
        self.strides = strides
        common = {
            "min_size": config.input_size,
            "max_size": config.input_size * 2,
            "image_mean": [0.0] * in_channels,
            "image_std": [1.0] * in_channels,
        }
        if config.architecture == "fcos":
            # FCOS uses one "anchor" point per location, of size = stride (its scale ranges and
            # box normalization are defined from it).
            anchors = AnchorGenerator(tuple((float(s),) for s in strides), ((1.0,),) * len(strides))
            self.model = FCOS(
                backbone,
                num_classes=2,
                anchor_generator=anchors,
                head=FCOSHead(backbone.out_channels, 1, 2, num_convs=config.head_convs),
                score_thresh=config.score_threshold,
                nms_thresh=config.nms_iou,
                detections_per_img=config.max_detections,
                topk_candidates=max(200, config.max_detections),
                **common,
            )
        else:
            sizes = tuple((3.0 * s, 3.0 * math.sqrt(2.0) * s) for s in strides)
            anchors = AnchorGenerator(sizes, ((config.anchor_aspect_ratio,),) * len(strides))
            if config.architecture == "retinanet":
                head = RetinaNetHead(
                    backbone.out_channels, anchors.num_anchors_per_location()[0], 2
                )
                self.model = RetinaNet(
                    backbone,
                    num_classes=2,
                    anchor_generator=anchors,
                    head=head,
                    score_thresh=config.score_threshold,
                    nms_thresh=config.nms_iou,
                    detections_per_img=config.max_detections,
                    **common,
                )
            else:
                from torchvision.ops import MultiScaleRoIAlign

                self.model = FasterRCNN(
                    backbone,
                    num_classes=2,
                    rpn_anchor_generator=anchors,
                    box_roi_pool=MultiScaleRoIAlign([str(i) for i in range(len(strides))], 7, 2),
                    rpn_pre_nms_top_n_train=600,
                    rpn_post_nms_top_n_train=300,
                    rpn_pre_nms_top_n_test=300,
                    rpn_post_nms_top_n_test=150,
                    rpn_batch_size_per_image=128,
                    box_batch_size_per_image=128,
                    box_score_thresh=config.score_threshold,
                    box_nms_thresh=config.nms_iou,
                    box_detections_per_img=config.max_detections,
                    **common,
                )

    def _standardize(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        self.check_images(images)
        mean, std = self.input_mean.view(-1, 1, 1), self.input_std.view(-1, 1, 1)
        return [(image - mean) / std for image in images]

    def losses(
        self, images: list[torch.Tensor], boxes: list[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        targets = [
            {
                "boxes": b,
                "labels": torch.full((b.shape[0],), FACE_LABEL, dtype=torch.int64, device=b.device),
            }
            for b in boxes
        ]
        return self.model(self._standardize(images), targets)

    def detect(self, images: list[torch.Tensor]) -> Detections:
        outputs = self.model(self._standardize(images))
        return [
            {
                "boxes": o["boxes"][o["labels"] == FACE_LABEL],
                "scores": o["scores"][o["labels"] == FACE_LABEL],
            }
            for o in outputs
        ]
