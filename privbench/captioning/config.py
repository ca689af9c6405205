"""Configuration of the captioner: model sizes (:class:`CaptionModelConfig`) and training
budget (:class:`CaptionTrainConfig`); the defaults are the quick preset's."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from privbench.api.config import ComponentConfig

FEATURE_EXTRACTORS = ("small-resnet", "resnet101")


class CaptionModelConfig(ComponentConfig):
    """Feature extractor and decoder sizes (defaults: the quick preset)."""

    feature_extractor: Literal["small-resnet", "resnet101"] = Field(
        "small-resnet", description="small-resnet (trained from scratch) or resnet101 (2PSC §2.2.1)"
    )
    base_width: int = Field(
        16, ge=8, le=256, description="small-resnet: width of its first stage (D = 8 × this)"
    )
    imagenet_weights: str | None = Field(
        None,
        description="resnet101: path of a local torchvision ResNet-101 ImageNet state_dict (never "
        "downloaded); none: random initialization",
    )
    min_feature_side: int = Field(
        4,
        ge=1,
        le=64,
        description="stages stop striding before the feature map gets smaller than this",
    )
    embed_dim: int = Field(128, ge=8, le=4096, description="m: word embedding size")
    attention_dim: int = Field(
        128, ge=8, le=4096, description="hidden size of the attention MLP f_att"
    )
    hidden_dim: int = Field(256, ge=8, le=4096, description="n: LSTM size")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="dropout before the deep output layer")
    attention_regularization: float = Field(
        1.0,
        ge=0.0,
        le=100.0,
        description="λ of the doubly stochastic attention term λ Σ_i (1 − Σ_t θ_ti)²",
    )


class CaptionTrainConfig(ComponentConfig):
    """Training budget of the captioner (defaults: the quick preset, ~2-3 min on 2 CPU cores)."""

    epochs: int = Field(25, ge=1, le=1000, description="maximum passes over the training images")
    batch_size: int = Field(
        16, ge=2, le=4096, description="images per step (each with all its reference captions)"
    )
    encoder_lr: float = Field(
        2e-3, gt=0, le=1.0, description="peak learning rate of the feature extractor"
    )
    decoder_lr: float = Field(
        4e-3, gt=0, le=1.0, description="peak learning rate of the attention LSTM"
    )
    weight_decay: float = Field(1e-2, ge=0, le=1.0, description="AdamW decoupled weight decay")
    grad_clip: float | None = Field(
        5.0, gt=0, description="clip the gradient norm to this (None: no clipping)"
    )
    patience: int | None = Field(
        8, ge=1, description="stop after this many epochs without a better validation CIDEr-D"
    )
    augment_shift: float = Field(
        0.0625,
        ge=0.0,
        le=0.25,
        description="random translation of each training measurement by up to this fraction "
        "of its side (replicate padding); 0: none",
    )
    eval_batch_size: int = Field(64, ge=1, le=65536, description="images per batch when decoding")
