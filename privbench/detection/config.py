"""Which detector, how large, and how it is trained: the options of every detection cell."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from privbench.api.config import ComponentConfig

#: Label of the face class in torchvision detectors (0 is the background class).
FACE_LABEL = 1
#: Version of the detector training code: enters cache keys and checkpoint signatures.
DETECTOR_VERSION = "1"
#: Salt of the detector loop's per-epoch batch orders (kept apart from the classifier loop's).
DETECTION_EPOCH_SALT = 4242
ARCHITECTURES = ("fcos", "faster-rcnn", "retinanet")
BACKBONES = ("light", "resnet18", "resnet50")
MMDET_EXTRA_HINT = (
    "The mmdet detector backend needs MMDetection 3.x and a compiled mmcv 2.1: install the extra "
    "with `pip install 'privbench[mmdet]'` after building mmcv with scripts/build_mmcv.sh "
    "(PyPI has only mmcv's source)."
)


class DetectorTraining(ComponentConfig):
    """Budget and optimizer of one detector training run (defaults: the quick preset).

    Measured on synthfaces ``quick`` (300 training scenes, 128×128) with the default FCOS: one
    epoch of batch 8 takes about 11 s on one CPU thread, and the best validation AP50 came at
    epoch 9 (clean, 16×16 low-res) to 12 (Gaussian blur σ 8), so 12 epochs keep a cell under
    3 minutes on 2 cores.
    """

    epochs: int = Field(
        12, ge=1, le=1000, description="maximum number of passes over the training scenes"
    )
    batch_size: int = Field(8, ge=1, le=1024, description="scenes per training step")
    lr: float = Field(
        2e-3, gt=0, le=1.0, description="peak learning rate of the one-cycle schedule (AdamW)"
    )
    weight_decay: float = Field(1e-4, ge=0, le=1.0, description="AdamW decoupled weight decay")
    grad_clip: float = Field(10.0, gt=0, description="gradient norm clipping")
    patience: int | None = Field(
        4,
        ge=1,
        description="stop after this many epochs without a better validation AP50 (None: never)",
    )
    hflip: bool = Field(
        False,
        description="random horizontal flips of measurement and boxes (off by default: "
        "measurements of learned optics are not mirror-symmetric)",
    )
    max_steps: int | None = Field(
        None, ge=1, description="stop after this many optimizer steps (smoke tests)"
    )
    eval_batch_size: int = Field(32, ge=1, le=4096, description="scenes per inference batch")


class DetectorConfig(ComponentConfig):
    """Which detector, how large, and how it is trained (defaults: the quick preset)."""

    backend: Literal["torchvision", "mmdet"] = Field("torchvision", description="detector library")
    architecture: Literal["fcos", "faster-rcnn", "retinanet"] = Field(
        "fcos",
        description="torchvision detector (see privbench.detection for why FCOS is the default)",
    )
    backbone: Literal["light", "resnet18", "resnet50"] = Field(
        "light",
        description="feature extractor: a light residual CNN (CPU) or a ResNet-FPN (GPU)",
    )
    config: str | None = Field(
        None, description="mmdet backend: config file path or bundled config name"
    )
    weights: str | None = Field(
        None,
        description="local file with initial weights (a state dict or a checkpoint holding one); "
        "never downloaded",
    )
    widths: tuple[int, int, int, int] = Field(
        (16, 32, 64, 128),
        description="light backbone: stem and three stage widths (strides 2, 4, 8, 16)",
    )
    fpn_channels: int = Field(
        32, ge=8, le=512, description="feature pyramid channels (FCOS: a multiple of 32)"
    )
    head_convs: int = Field(2, ge=1, le=4, description="FCOS: convolutions per head branch")
    input_size: int = Field(
        128,
        ge=32,
        le=2048,
        description="measurements are resized inside the detector so that their short side is this",
    )
    anchor_aspect_ratio: float = Field(
        1.1, gt=0.2, lt=5.0, description="anchor-based detectors: anchor height / width"
    )
    score_threshold: float = Field(
        0.05, ge=0.0, lt=1.0, description="detections below this score are dropped"
    )
    nms_iou: float = Field(0.5, gt=0.0, le=1.0, description="IoU of non-maximum suppression")
    max_detections: int = Field(100, ge=1, le=1000, description="detections kept per scene")
    training: DetectorTraining = Field(default_factory=DetectorTraining)

    @model_validator(mode="after")
    def _backend_fields(self) -> DetectorConfig:
        if self.backend == "mmdet" and not self.config:
            raise ValueError(
                "the mmdet backend needs `config`: an mmdet config file path or a bundled "
                "config name"
            )
        if self.backend == "torchvision" and self.config:
            raise ValueError(
                "`config` is for the mmdet backend; the torchvision backend takes "
                "`architecture` and `backbone`"
            )
        if self.architecture == "fcos" and self.fpn_channels % 32:
            raise ValueError(
                "fpn_channels must be a multiple of 32 for FCOS (its head normalizes with "
                f"GroupNorm(32)); got {self.fpn_channels}"
            )
        if any(w < 8 for w in self.widths):
            raise ValueError(f"widths must be at least 8 each; got {self.widths}")
        return self

    def label(self) -> str:
        """Short name of the detector for result details, e.g. ``torchvision:fcos/light``."""
        if self.backend == "mmdet":
            return f"mmdet:{self.config}"
        return f"torchvision:{self.architecture}/{self.backbone}"

    def model_key(self) -> dict[str, Any]:
        """Everything that defines the network (not its training), for cache keys."""
        return self.model_dump(mode="json", exclude={"training"})
