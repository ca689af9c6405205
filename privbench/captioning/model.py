"""The captioner of 2PSC §2.2, after Show, Attend and Tell (Xu et al., ICML 2015, SAT below).

- **Feature extraction** (§2.2.1): a ResNet trunk without its last two layers (global average
  pooling and the classifier) turns a measurement into L feature vectors a_i ∈ R^D, one per
  cell of its last feature map. ``resnet101`` is the paper's ResNet-101 (torchvision's layout),
  with ImageNet weights read only from a local file; ``small-resnet`` is a small ResNet trained
  from scratch (the quick preset). Both adapt to the measurement: the stem takes its channel
  count (12 for CAnOPIC's 4-filter bank), and only as many stride-2 stages stride as keep the
  last feature map at least ``min_feature_side`` wide (the rule of
  :mod:`privbench.nn.classifiers`), so a 16×16 low-resolution measurement still yields a grid
  to attend over.
- **Decoder** (§2.2.2): at step t the soft attention weights θ_t = softmax_i(e_ti), with
  e_ti = w^T tanh(W_a a_i + W_h h_{t-1}) (SAT §3.1.2), give the context
  ẑ_t = β_t Σ_i θ_ti a_i with the gating scalar β_t = σ(f_β(h_{t-1})) (SAT §4.2.1); the LSTM
  equations of 2PSC §2.2.2 update (c_t, h_t) from E v_{t-1}, h_{t-1} and ẑ_t; the word
  distribution is SAT's deep output p(v_t) ∝ exp(L_o(E v_{t-1} + L_h h_t + L_z ẑ_t)) (SAT
  eq. 7). The initial state is h_0 = tanh(f_init,h(mean_i a_i)), c_0 = tanh(f_init,c(mean_i a_i)).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from privbench.api.errors import ConfigError, DataError
from privbench.captioning.config import CaptionModelConfig
from privbench.captioning.vocabulary import PAD, SPECIAL_TOKENS
from privbench.nn.classifiers import (
    BasicBlock,
    StandardizedInput,
    conv_bn_relu,
    downsampling_steps,
    strided_points,
)


class SmallResNetTrunk(nn.Module):
    """A small ResNet: 3×3 stem conv, 3×3 max-pool, four stages of one basic block (widths w, 2w,
    4w, 8w). Downsampling points (input → output): stem conv, max-pool, stages 2-4, the deepest
    first. Output: ``(B, 8w, h, w')``."""

    def __init__(
        self, in_channels: int, height: int, width: int, base_width: int, min_feature_side: int
    ) -> None:
        super().__init__()
        widths = [base_width, 2 * base_width, 4 * base_width, 8 * base_width]
        stem_stride, pool, *stage_strides = strided_points(
            5, downsampling_steps(height, width, 5, min_feature_side)
        )
        self.stem = conv_bn_relu(in_channels, widths[0], 3, 2 if stem_stride else 1)
        self.pool = nn.MaxPool2d(3, 2, 1) if pool else nn.Identity()
        stages = [BasicBlock(widths[0], widths[0], 1)]
        for index, strided in enumerate(stage_strides):
            stages.append(BasicBlock(widths[index], widths[index + 1], 2 if strided else 1))
        self.stages = nn.Sequential(*stages)
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.pool(self.stem(x)))


def load_imagenet_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A torchvision ResNet-101 state_dict from a local file (raw, or under
    ``state_dict``/``model``)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(
            f"ImageNet weights for resnet101 not found at {str(file)!r}. Set the captioning "
            "model's 'imagenet_weights' to the path of a local torchvision ResNet-101 state_dict "
            "(.pth), or to null to train from a random "
            "initialization; privbench never downloads weights."
        )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(
            f"Could not read ResNet-101 weights from {str(file)!r}: {error}"
        ) from error
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConfigError(f"{str(file)!r} does not hold a state_dict (got {type(state).__name__}).")
    return {k.removeprefix("module."): v for k, v in state.items()}


def resnet101_trunk(
    in_channels: int, height: int, width: int, imagenet_weights: str | None, min_feature_side: int
) -> tuple[nn.Module, int]:
    """torchvision's ResNet-101 without its last two layers (average pool, fc), 2PSC §2.2.1.

    ImageNet weights come from ``imagenet_weights`` (a local file) before the measurement
    adaptations: a stem for C ≠ 3 channels starts from the RGB kernels tiled over the channels
    (channel c takes the kernel of colour c mod 3, scaled by 3/C so a grey input gives the same
    response), and the stride of the stem conv, the max-pool and the first block of layers 2-4
    is removed (deepest kept) where the input is too small for the full 32× reduction.
    """
    from torchvision.models import resnet101

    net = resnet101(weights=None)
    if imagenet_weights is not None:
        state = load_imagenet_state(imagenet_weights)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        expected = {k for k in net.state_dict() if not k.startswith("fc.")}
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ConfigError(
                f"{imagenet_weights!r} is not a torchvision ResNet-101 state_dict: missing keys "
                f"{missing[:5]}{'…' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
                f"{'…' if len(unexpected) > 5 else ''}."
            )
        try:
            net.load_state_dict(state, strict=False)
        except RuntimeError as error:
            raise ConfigError(
                f"{imagenet_weights!r} does not fit torchvision's ResNet-101: {error}"
            ) from error
    if in_channels != 3:
        rgb = net.conv1.weight.detach()
        conv1 = nn.Conv2d(in_channels, rgb.shape[0], 7, 2, 3, bias=False)
        with torch.no_grad():
            conv1.weight.copy_(rgb[:, [c % 3 for c in range(in_channels)]] * (3.0 / in_channels))
        net.conv1 = conv1
    flags = strided_points(5, downsampling_steps(height, width, 5, min_feature_side))
    if not flags[0]:
        net.conv1.stride = (1, 1)
    if not flags[1]:
        net.maxpool = nn.Identity()
    for layer, strided in zip((net.layer2, net.layer3, net.layer4), flags[2:]):
        if not strided:
            layer[0].conv2.stride = (1, 1)
            layer[0].downsample[0].stride = (1, 1)
    trunk = nn.Sequential(*list(net.children())[:-2])
    return trunk, 2048


class MeasurementFeatures(StandardizedInput):
    """Standardize each measurement channel (training-set mean/std, saved buffers: see
    :class:`~privbench.nn.classifiers.StandardizedInput`), run the trunk, and read its last feature
    map as L = h·w annotation vectors a_i ∈ R^D: ``(B, L, D)``."""

    def __init__(
        self, trunk: nn.Module, feature_dim: int, input_shape: tuple[int, int, int], name: str
    ) -> None:
        super().__init__(input_shape)
        self.trunk = trunk
        self.feature_dim = int(feature_dim)
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (
            self.trunk(self.standardize(x, f"{self.name} feature extractor"))
            .flatten(2)
            .transpose(1, 2)
        )


def build_feature_extractor(
    config: CaptionModelConfig, input_shape: tuple[int, int, int]
) -> MeasurementFeatures:
    """The configured trunk (``small-resnet`` or ``resnet101``) for measurements of shape
    ``(C, H, W)``, wrapped to read its last feature map as annotation vectors."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(
            f"Measurement shape must be (channels, height, width); got {tuple(input_shape)}."
        )
    channels, height, width = shape
    if config.feature_extractor == "resnet101":
        trunk, dim = resnet101_trunk(
            channels, height, width, config.imagenet_weights, config.min_feature_side
        )
    else:
        trunk = SmallResNetTrunk(
            channels, height, width, config.base_width, config.min_feature_side
        )
        dim = trunk.out_channels
    return MeasurementFeatures(trunk, dim, shape, config.feature_extractor)


# -- the attention LSTM decoder ------------------------------------------------------------
class SoftAttention(nn.Module):
    """SAT §3.1.2: e_ti = w^T tanh(W_a a_i + W_h h_{t-1} + b), θ_t = softmax_i(e_t)."""

    def __init__(self, feature_dim: int, hidden_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.feature_proj = nn.Linear(feature_dim, attention_dim)  # W_a, b
        self.hidden_proj = nn.Linear(hidden_dim, attention_dim, bias=False)  # W_h
        self.score = nn.Linear(attention_dim, 1)  # w

    def forward(self, projected_features: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        energy = self.score(
            torch.tanh(projected_features + self.hidden_proj(hidden).unsqueeze(1))
        ).squeeze(2)
        return energy.softmax(dim=1)


@dataclass
class DecoderState:
    h: torch.Tensor
    c: torch.Tensor


class AttentionLSTMDecoder(nn.Module):
    """The 2PSC §2.2.2 LSTM with SAT's soft attention, gating scalar and deep output layer."""

    def __init__(
        self,
        vocab_size: int,
        feature_dim: int,
        embed_dim: int,
        attention_dim: int,
        hidden_dim: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.vocab_size = int(vocab_size)
        self.hidden_dim = int(hidden_dim)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)  # E
        self.attention = SoftAttention(feature_dim, hidden_dim, attention_dim)
        self.gate = nn.Linear(hidden_dim, 1)  # f_β
        self.init_h = nn.Linear(feature_dim, hidden_dim)  # f_init,h
        self.init_c = nn.Linear(feature_dim, hidden_dim)  # f_init,c
        # [W_s | Q_s] applied to [E v_{t-1}; ẑ_t] with the biases b_s, and U_s applied to h_{t-1},
        # for s = i, f, c, o stacked in that order.
        self.input_weights = nn.Linear(embed_dim + feature_dim, 4 * hidden_dim)
        self.hidden_weights = nn.Linear(hidden_dim, 4 * hidden_dim, bias=False)
        self.out_hidden = nn.Linear(hidden_dim, embed_dim)  # L_h
        self.out_context = nn.Linear(feature_dim, embed_dim)  # L_z
        self.out_words = nn.Linear(embed_dim, vocab_size)  # L_o
        self.dropout = nn.Dropout(dropout)

    def initial_state(self, features: torch.Tensor) -> DecoderState:
        mean = features.mean(dim=1)
        return DecoderState(torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean)))

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """W_a a_i + b for every location (computed once per image)."""
        return self.attention.feature_proj(features)

    def step(
        self,
        features: torch.Tensor,
        projected: torch.Tensor,
        previous_words: torch.Tensor,
        state: DecoderState,
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One time step: word logits, the new state, and the attention weights θ_t ``(B, L)``.

        i_t = σ(W_i E v_{t-1} + U_i h_{t-1} + Q_i ẑ_t + b_i), likewise f_t and o_t;
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ tanh(W_c E v_{t-1} + U_c h_{t-1} + Q_c ẑ_t + b_c);
        h_t = o_t ⊙ tanh(c_t)  (2PSC §2.2.2), with ẑ_t = β_t Σ_i θ_ti a_i.
        """
        theta = self.attention(projected, state.h)
        beta = torch.sigmoid(self.gate(state.h))
        context = beta * torch.bmm(theta.unsqueeze(1), features).squeeze(1)
        embedded = self.embedding(previous_words)
        gates = self.input_weights(torch.cat([embedded, context], dim=1)) + self.hidden_weights(
            state.h
        )
        input_gate, forget_gate, candidate, output_gate = gates.chunk(4, dim=1)
        c = torch.sigmoid(forget_gate) * state.c + torch.sigmoid(input_gate) * torch.tanh(candidate)
        h = torch.sigmoid(output_gate) * torch.tanh(c)
        logits = self.out_words(
            self.dropout(embedded + self.out_hidden(h) + self.out_context(context))
        )
        return logits, DecoderState(h, c), theta

    def forward(
        self, features: torch.Tensor, tokens: torch.Tensor, steps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: step t reads the reference word t-1. Returns logits ``(B, T, K)`` and
        attention ``(B, T, L)`` for T = the longest caption's steps (zeros past a caption's end).

        Captions are processed longest first, and step t runs only on the captions that still
        have a word to predict there, so short captions cost no padding steps.
        """
        batch, locations, _ = features.shape
        length = int(steps.max())
        order = torch.argsort(steps, descending=True, stable=True)
        features, tokens, sorted_steps = features[order], tokens[order], steps[order]
        active_counts = (
            (sorted_steps.unsqueeze(0) > torch.arange(length, device=steps.device).unsqueeze(1))
            .sum(1)
            .tolist()
        )
        projected = self.project(features)
        state = self.initial_state(features)
        logits_out = features.new_zeros(batch, length, self.vocab_size)
        theta_out = features.new_zeros(batch, length, locations)
        for t, active in enumerate(active_counts):
            state = DecoderState(state.h[:active], state.c[:active])
            logits, state, theta = self.step(
                features[:active], projected[:active], tokens[:active, t], state
            )
            logits_out[:active, t] = logits
            theta_out[:active, t] = theta
        inverse = torch.argsort(order)
        return logits_out[inverse], theta_out[inverse]


class CaptionModel(nn.Module):
    """Feature extractor + attention LSTM decoder."""

    def __init__(self, features: MeasurementFeatures, decoder: AttentionLSTMDecoder) -> None:
        super().__init__()
        self.features = features
        self.decoder = decoder

    def forward(
        self, images: torch.Tensor, tokens: torch.Tensor, steps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder(self.features(images), tokens, steps)


def build_caption_model(
    config: CaptionModelConfig, input_shape: tuple[int, int, int], vocab_size: int
) -> CaptionModel:
    """A randomly initialised captioner for measurements of shape ``(C, H, W)`` (the ResNet-101
    trunk with ImageNet weights when ``config.imagenet_weights`` is set)."""
    if int(vocab_size) <= len(SPECIAL_TOKENS):
        raise DataError(
            "The caption vocabulary holds no word besides "
            f"{SPECIAL_TOKENS}; lower min_word_count or provide captions."
        )
    features = build_feature_extractor(config, input_shape)
    decoder = AttentionLSTMDecoder(
        vocab_size,
        features.feature_dim,
        config.embed_dim,
        config.attention_dim,
        config.hidden_dim,
        config.dropout,
    )
    return CaptionModel(features, decoder)
