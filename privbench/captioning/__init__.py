"""Image captioning on sensor measurements: 2PSC's decoder (§2.2), after Show, Attend and Tell.

2PSC (Fig. 1) captions the images of a privacy camera with a CNN feature extractor followed by
an LSTM with soft attention (Xu et al., ICML 2015, "Show, Attend and Tell", SAT below):

- **Feature extraction** (§2.2.1): a ResNet trunk without its last two layers (global average
  pooling and the classifier) turns a measurement into L feature vectors a_i ∈ R^D, one per cell
  of its last feature map. ``resnet101`` is the paper's ResNet-101 (torchvision's layout), with
  ImageNet weights read only from a local file; ``small-resnet`` is a small ResNet trained from
  scratch (the quick preset). Both adapt to the measurement: the stem takes its channel count
  (12 for CAnOPIC's 4-filter bank), and only as many stride-2 stages stride as keep the last
  feature map at least ``min_feature_side`` wide (the rule of :mod:`privbench.nn.classifiers`), so a
  16×16 low-resolution measurement still yields a grid to attend over.
- **Decoder** (§2.2.2): at step t the soft attention weights θ_t = softmax_i(e_ti), with
  e_ti = w^T tanh(W_a a_i + W_h h_{t-1}) (SAT §3.1.2), give the context
  ẑ_t = β_t Σ_i θ_ti a_i with the gating scalar β_t = σ(f_β(h_{t-1})) (SAT §4.2.1); the LSTM
  equations of 2PSC §2.2.2 update (c_t, h_t) from E v_{t-1}, h_{t-1} and ẑ_t; the word
  distribution is SAT's deep output p(v_t) ∝ exp(L_o(E v_{t-1} + L_h h_t + L_z ẑ_t)) (SAT eq. 7).
  The initial state is h_0 = tanh(f_init,h(mean_i a_i)), c_0 = tanh(f_init,c(mean_i a_i)).
- **Loss** (2PSC §2.3, without its last term, which belongs to the optics designer): the
  negative log-likelihood of the reference caption under teacher forcing plus the doubly
  stochastic attention regularizer λ Σ_i (1 − Σ_t θ_ti)². (2PSC's equation writes the
  likelihood twice, as −log p(v | A) and as the word cross-entropy; both are the same sum of
  per-word negative log-probabilities and are counted once.)
- **Decoding**: beam search (beam size configurable) keeping the hypothesis of highest total
  log-probability; greedy decoding is beam size 1.
- **Vocabulary**: the words of the training captions seen at least ``min_count`` times, after
  ``<pad> <start> <end> <unk>``.

Training (:func:`train_captioner`) follows :mod:`privbench.nn.training`: seeded, Adam(W) with a
one-cycle schedule, per-epoch checkpoints at ``ctx.checkpoint_path(name)`` with resume, early
stopping on the validation CIDEr-D of the captions decoded as the test split will be (same beam
size; ties broken by the validation loss), keeping the best epoch's weights. A step takes a
batch of images and all their reference captions, so the CNN runs once per image and the
decoder once per caption.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from privbench.api.config import ComponentConfig, stable_hash
from privbench.api.errors import ConfigError, DataError, InputError
from privbench.api.evaluation import RunContext
from privbench.nn.classifiers import BasicBlock, StandardizedInput, conv_bn_relu, downsampling_steps, strided_points
from privbench.nn.fit import HistorySummary, TrainingState
from privbench.nn.fit import epoch_seed as _epoch_seed
from privbench.nn.training import _fingerprint, channel_statistics

CHECKPOINT_FORMAT = 1
SPECIAL_TOKENS = ("<pad>", "<start>", "<end>", "<unk>")
PAD, START, END, UNK = range(len(SPECIAL_TOKENS))
FEATURE_EXTRACTORS = ("small-resnet", "resnet101")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


# -- words ---------------------------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    """Lower-case words (letters and digits, inner apostrophes kept); punctuation is dropped."""
    return _WORD.findall(text.lower())


def normalize_caption(text: str) -> str:
    """A caption as the space-joined words of :func:`tokenize` (what the model learns to write)."""
    return " ".join(tokenize(text))


class Vocabulary:
    """Word ↔ index map: ``<pad>=0, <start>=1, <end>=2, <unk>=3``, then words by frequency."""

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if tuple(words[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise DataError(f"A vocabulary must start with {SPECIAL_TOKENS}; got {words[:4]}.")
        if len(set(words)) != len(words):
            raise DataError("A vocabulary cannot list a word twice.")
        self.words = words
        self._index = {word: i for i, word in enumerate(words)}

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int) -> "Vocabulary":
        """Words seen at least ``min_count`` times in ``captions`` (most frequent first, ties
        alphabetical); rarer words will read as ``<unk>``."""
        if int(min_count) < 1:
            raise ConfigError(f"min_count must be at least 1; got {min_count}.")
        counts = Counter(word for text in captions for word in tokenize(text))
        kept = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIAL_TOKENS),
                      key=lambda w: (-counts[w], w))
        return cls([*SPECIAL_TOKENS, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._index

    def index(self, word: str) -> int:
        return self._index.get(word, UNK)

    def encode(self, text: str, max_words: int) -> list[int]:
        """``<start> w_1 … w_C <end>`` with at most ``max_words`` words."""
        return [START, *(self.index(w) for w in tokenize(text)[:max_words]), END]

    def decode(self, ids: Iterable[int]) -> str:
        """Words up to the first ``<end>``; ``<start>`` and ``<pad>`` are skipped."""
        words = []
        for i in ids:
            i = int(i)
            if i == END:
                break
            if i in (PAD, START):
                continue
            words.append(self.words[i])
        return " ".join(words)


@dataclass
class EncodedCaptions:
    """All reference captions of a split as padded index rows, with the image each describes.

    ``tokens[j]`` is ``<start> w_1 … w_C <end> <pad> …``; ``steps[j] = C + 1`` is the number of
    words the decoder predicts for it (the C words and ``<end>``).
    """

    tokens: torch.Tensor  # int64 (M, T + 1)
    steps: torch.Tensor  # int64 (M,)
    image_index: torch.Tensor  # int64 (M,)

    def rows_of_images(self, images: torch.Tensor) -> torch.Tensor:
        """Indices of the captions of ``images`` (in the order of ``images``)."""
        return torch.cat([self._rows[int(i)] for i in images])

    def __post_init__(self) -> None:
        order = torch.argsort(self.image_index, stable=True)
        counts = torch.bincount(self.image_index, minlength=int(self.image_index.max()) + 1 if len(self.image_index) else 0)
        self._rows = list(order.split(counts.tolist()))


def encode_captions(vocabulary: Vocabulary, captions: Sequence[Sequence[str]], max_words: int) -> EncodedCaptions:
    """Index every reference caption of every image (empty captions are left out)."""
    rows, images = [], []
    for image, texts in enumerate(captions):
        for text in texts:
            if tokenize(text):
                rows.append(vocabulary.encode(text, max_words))
                images.append(image)
    described = set(images)
    missing = [i for i in range(len(captions)) if i not in described]
    if missing:
        raise DataError(
            f"Every scene needs at least one non-empty reference caption; scenes {missing[:10]} "
            f"{'(and more) ' if len(missing) > 10 else ''}have none."
        )
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), PAD, dtype=torch.long)
    for j, row in enumerate(rows):
        tokens[j, : len(row)] = torch.tensor(row)
    steps = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)
    return EncodedCaptions(tokens, steps, torch.tensor(images, dtype=torch.long))


# -- configuration ------------------------------------------------------------------------
class CaptionModelConfig(ComponentConfig):
    """Feature extractor and decoder sizes (defaults: the quick preset)."""

    feature_extractor: Literal["small-resnet", "resnet101"] = Field(
        "small-resnet", description="small-resnet (trained from scratch) or resnet101 (2PSC §2.2.1)"
    )
    base_width: int = Field(16, ge=8, le=256, description="small-resnet: width of its first stage (D = 8 × this)")
    imagenet_weights: str | None = Field(
        None, description="resnet101: path of a local torchvision ResNet-101 ImageNet state_dict (never downloaded); "
        "none: random initialization"
    )
    min_feature_side: int = Field(4, ge=1, le=64, description="stages stop striding before the feature map gets smaller than this")
    embed_dim: int = Field(128, ge=8, le=4096, description="m: word embedding size")
    attention_dim: int = Field(128, ge=8, le=4096, description="hidden size of the attention MLP f_att")
    hidden_dim: int = Field(256, ge=8, le=4096, description="n: LSTM size")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="dropout before the deep output layer")
    attention_regularization: float = Field(
        1.0, ge=0.0, le=100.0, description="λ of the doubly stochastic attention term λ Σ_i (1 − Σ_t θ_ti)²"
    )


class CaptionTrainConfig(ComponentConfig):
    """Training budget of the captioner (defaults: the quick preset, ~2-3 min on 2 CPU cores)."""

    epochs: int = Field(25, ge=1, le=1000, description="maximum passes over the training images")
    batch_size: int = Field(16, ge=2, le=4096, description="images per step (each with all its reference captions)")
    encoder_lr: float = Field(2e-3, gt=0, le=1.0, description="peak learning rate of the feature extractor")
    decoder_lr: float = Field(4e-3, gt=0, le=1.0, description="peak learning rate of the attention LSTM")
    weight_decay: float = Field(1e-2, ge=0, le=1.0, description="AdamW decoupled weight decay")
    grad_clip: float | None = Field(5.0, gt=0, description="clip the gradient norm to this (None: no clipping)")
    patience: int | None = Field(8, ge=1, description="stop after this many epochs without a better validation CIDEr-D")
    augment_shift: float = Field(
        0.0625, ge=0.0, le=0.25, description="random translation of each training measurement by up to this fraction "
        "of its side (replicate padding); 0: none"
    )
    eval_batch_size: int = Field(64, ge=1, le=65536, description="images per batch when decoding")


# -- feature extraction -------------------------------------------------------------------
class SmallResNetTrunk(nn.Module):
    """A small ResNet: 3×3 stem conv, 3×3 max-pool, four stages of one basic block (widths w, 2w,
    4w, 8w). Downsampling points (input → output): stem conv, max-pool, stages 2-4, the deepest
    first. Output: ``(B, 8w, h, w')``."""

    def __init__(self, in_channels: int, height: int, width: int, base_width: int, min_feature_side: int) -> None:
        super().__init__()
        widths = [base_width, 2 * base_width, 4 * base_width, 8 * base_width]
        stem_stride, pool, *stage_strides = strided_points(5, downsampling_steps(height, width, 5, min_feature_side))
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
    """A torchvision ResNet-101 state_dict from a local file (raw, or under ``state_dict``/``model``)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(
            f"ImageNet weights for resnet101 not found at {str(file)!r}. Set the captioning model's "
            "'imagenet_weights' to the path of a local torchvision ResNet-101 state_dict (.pth), or to "
            "null to train from a random initialization; privbench never downloads weights."
        )
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(f"Could not read ResNet-101 weights from {str(file)!r}: {error}") from error
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
            raise ConfigError(f"{imagenet_weights!r} does not fit torchvision's ResNet-101: {error}") from error
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
    :class:`~privbench.nn.classifiers.StandardizedInput`), run the trunk, and read its last feature map
    as L = h·w annotation vectors a_i ∈ R^D: ``(B, L, D)``."""

    def __init__(self, trunk: nn.Module, feature_dim: int, input_shape: tuple[int, int, int], name: str) -> None:
        super().__init__(input_shape)
        self.trunk = trunk
        self.feature_dim = int(feature_dim)
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.standardize(x, f"{self.name} feature extractor")).flatten(2).transpose(1, 2)


def build_feature_extractor(config: CaptionModelConfig, input_shape: tuple[int, int, int]) -> MeasurementFeatures:
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"Measurement shape must be (channels, height, width); got {tuple(input_shape)}.")
    channels, height, width = shape
    if config.feature_extractor == "resnet101":
        trunk, dim = resnet101_trunk(channels, height, width, config.imagenet_weights, config.min_feature_side)
    else:
        trunk = SmallResNetTrunk(channels, height, width, config.base_width, config.min_feature_side)
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
        energy = self.score(torch.tanh(projected_features + self.hidden_proj(hidden).unsqueeze(1))).squeeze(2)
        return energy.softmax(dim=1)


@dataclass
class DecoderState:
    h: torch.Tensor
    c: torch.Tensor


class AttentionLSTMDecoder(nn.Module):
    """The 2PSC §2.2.2 LSTM with SAT's soft attention, gating scalar and deep output layer."""

    def __init__(self, vocab_size: int, feature_dim: int, embed_dim: int, attention_dim: int, hidden_dim: int, dropout: float) -> None:
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
        self, features: torch.Tensor, projected: torch.Tensor, previous_words: torch.Tensor, state: DecoderState
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
        gates = self.input_weights(torch.cat([embedded, context], dim=1)) + self.hidden_weights(state.h)
        input_gate, forget_gate, candidate, output_gate = gates.chunk(4, dim=1)
        c = torch.sigmoid(forget_gate) * state.c + torch.sigmoid(input_gate) * torch.tanh(candidate)
        h = torch.sigmoid(output_gate) * torch.tanh(c)
        logits = self.out_words(self.dropout(embedded + self.out_hidden(h) + self.out_context(context)))
        return logits, DecoderState(h, c), theta

    def forward(self, features: torch.Tensor, tokens: torch.Tensor, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: step t reads the reference word t-1. Returns logits ``(B, T, K)`` and
        attention ``(B, T, L)`` for T = the longest caption's steps (zeros past a caption's end).

        Captions are processed longest first, and step t runs only on the captions that still
        have a word to predict there, so short captions cost no padding steps.
        """
        batch, locations, _ = features.shape
        length = int(steps.max())
        order = torch.argsort(steps, descending=True, stable=True)
        features, tokens, sorted_steps = features[order], tokens[order], steps[order]
        active_counts = (sorted_steps.unsqueeze(0) > torch.arange(length, device=steps.device).unsqueeze(1)).sum(1).tolist()
        projected = self.project(features)
        state = self.initial_state(features)
        logits_out = features.new_zeros(batch, length, self.vocab_size)
        theta_out = features.new_zeros(batch, length, locations)
        for t, active in enumerate(active_counts):
            state = DecoderState(state.h[:active], state.c[:active])
            logits, state, theta = self.step(features[:active], projected[:active], tokens[:active, t], state)
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

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder(self.features(images), tokens, steps)


def build_caption_model(config: CaptionModelConfig, input_shape: tuple[int, int, int], vocab_size: int) -> CaptionModel:
    """A randomly initialised captioner for measurements of shape ``(C, H, W)`` (the ResNet-101
    trunk with ImageNet weights when ``config.imagenet_weights`` is set)."""
    if int(vocab_size) <= len(SPECIAL_TOKENS):
        raise DataError(
            f"The caption vocabulary holds no word besides {SPECIAL_TOKENS}; lower min_word_count or provide captions."
        )
    features = build_feature_extractor(config, input_shape)
    decoder = AttentionLSTMDecoder(
        vocab_size, features.feature_dim, config.embed_dim, config.attention_dim, config.hidden_dim, config.dropout
    )
    return CaptionModel(features, decoder)


# -- loss ----------------------------------------------------------------------------------
def step_mask(steps: torch.Tensor, length: int) -> torch.Tensor:
    """``mask[j, t]`` = 1 where step t predicts a word (or ``<end>``) of caption j."""
    return (torch.arange(length, device=steps.device).unsqueeze(0) < steps.unsqueeze(1)).float()


def doubly_stochastic_penalty(attention: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ_i (1 − Σ_t θ_ti)² per caption (2PSC §2.3, SAT eq. 14), over the caption's own steps.

    ``attention``: θ ``(B, T, L)``; ``mask``: ``(B, T)``. Returns ``(B,)``.
    """
    attention_per_location = (attention * mask.unsqueeze(2)).sum(dim=1)
    return ((1.0 - attention_per_location) ** 2).sum(dim=1)


def caption_loss(
    logits: torch.Tensor, tokens: torch.Tensor, steps: torch.Tensor, attention: torch.Tensor, regularization: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean over captions of −Σ_t log p(v_t | v_<t, A) + λ Σ_i (1 − Σ_t θ_ti)².

    ``tokens``: ``<start> w_1 … <end> <pad>…``; step t's target is ``tokens[:, t + 1]``.
    """
    length = logits.shape[1]
    targets = tokens[:, 1 : length + 1]
    mask = step_mask(steps, length)
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none").view_as(mask)
    nll_per_caption = (nll * mask).sum(dim=1)
    penalty = doubly_stochastic_penalty(attention, mask)
    loss = (nll_per_caption + regularization * penalty).mean()
    words = mask.sum()
    return loss, {
        "nll_per_word": float(nll_per_caption.sum().detach() / words),
        "attention_penalty": float(penalty.mean().detach()),
    }


# -- decoding ------------------------------------------------------------------------------
def _banned_words(vocab_size: int, device: torch.device) -> torch.Tensor:
    """Log-probability offsets that forbid ``<pad>``, ``<start>`` and ``<unk>`` in generated captions."""
    offsets = torch.zeros(vocab_size, device=device)
    offsets[[PAD, START, UNK]] = float("-inf")
    return offsets


@torch.no_grad()
def greedy_decode(decoder: AttentionLSTMDecoder, features: torch.Tensor, max_words: int) -> list[list[int]]:
    """The most probable next word at every step, until ``<end>`` or ``max_words`` words."""
    batch = features.shape[0]
    projected = decoder.project(features)
    state = decoder.initial_state(features)
    banned = _banned_words(decoder.vocab_size, features.device)
    words = torch.full((batch,), START, dtype=torch.long, device=features.device)
    done = torch.zeros(batch, dtype=torch.bool, device=features.device)
    chosen = []
    for _ in range(max_words):
        logits, state, _ = decoder.step(features, projected, words, state)
        words = (logits.log_softmax(dim=1) + banned).argmax(dim=1)
        chosen.append(words)
        done |= words == END
        if bool(done.all()):
            break
    rows = torch.stack(chosen, dim=1).tolist() if chosen else [[] for _ in range(batch)]
    return [row[: row.index(END)] if END in row else row for row in rows]


@torch.no_grad()
def beam_search(decoder: AttentionLSTMDecoder, features: torch.Tensor, beam_size: int, max_words: int) -> list[list[int]]:
    """Beam search per image: keep the ``beam_size`` partial captions of highest total
    log-probability; a hypothesis that emits ``<end>`` is complete; the answer is the complete
    caption of highest total log-probability (an image stops as soon as no partial caption can
    beat it, since log-probabilities only add up to less). A caption has at most ``max_words``
    words: the step after them may only emit ``<end>``. ``beam_size = 1`` is greedy decoding.
    """
    if beam_size < 1:
        raise ConfigError(f"beam_size must be at least 1; got {beam_size}.")
    batch, locations, dim = features.shape
    k = beam_size
    device = features.device
    vocab = decoder.vocab_size
    features = features.repeat_interleave(k, dim=0)
    projected = decoder.project(features)
    state = decoder.initial_state(features)
    banned = _banned_words(vocab, device)
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one
    words = torch.full((batch * k,), START, dtype=torch.long, device=device)
    sequences = torch.zeros(batch * k, 0, dtype=torch.long, device=device)
    best_complete: list[tuple[float, list[int]] | None] = [None] * batch
    base = (torch.arange(batch, device=device) * k).unsqueeze(1)
    only_end = torch.full((vocab,), float("-inf"), device=device)
    only_end[END] = 0.0
    for step in range(max_words + 1):
        logits, state, _ = decoder.step(features, projected, words, state)
        log_probs = logits.log_softmax(dim=1) + (only_end if step == max_words else banned)
        candidates = (scores.unsqueeze(2) + log_probs.view(batch, k, vocab)).view(batch, k * vocab)
        top_scores, top_index = candidates.topk(k, dim=1)
        source = (base + torch.div(top_index, vocab, rounding_mode="floor")).flatten()
        words = (top_index % vocab).flatten()
        sequences = sequences[source]
        state = DecoderState(state.h[source], state.c[source])
        ended = (words == END).view(batch, k) & torch.isfinite(top_scores)
        for b, j in torch.nonzero(ended).tolist():
            score = float(top_scores[b, j])
            if best_complete[b] is None or score > best_complete[b][0]:
                best_complete[b] = (score, sequences[b * k + j].tolist())
        scores = top_scores.masked_fill(ended, float("-inf"))
        sequences = torch.cat([sequences, words.unsqueeze(1)], dim=1)
        for b in range(batch):  # nothing left that could beat the best complete caption
            if best_complete[b] is not None and float(scores[b].max()) <= best_complete[b][0]:
                scores[b] = float("-inf")
        if not bool(torch.isfinite(scores).any()):
            break
    results = []
    for b in range(batch):
        if best_complete[b] is not None:
            results.append(best_complete[b][1])
        else:
            results.append(sequences[b * k + int(scores[b].argmax())].tolist())
    return results


@torch.no_grad()
def generate_captions(
    model: CaptionModel, images: torch.Tensor, vocabulary: Vocabulary, *, beam_size: int, max_words: int,
    batch_size: int = 64, device: torch.device | str | None = None,
) -> list[str]:
    """One caption per image (beam search; ``beam_size = 1`` decodes greedily)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    captions: list[str] = []
    for chunk in images.split(batch_size):
        features = model.features(chunk.to(device).float())
        if beam_size == 1:
            ids = greedy_decode(model.decoder, features, max_words)
        else:
            ids = beam_search(model.decoder, features, beam_size, max_words)
        captions.extend(vocabulary.decode(row) for row in ids)
    model.train(was_training)
    return captions


# -- training ------------------------------------------------------------------------------
@dataclass
class CaptionHistory(HistorySummary):
    """Per-epoch records and the outcome of one captioner training run."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_cider: float = float("nan")
    best_val_bleu_4: float = float("nan")
    best_val_loss: float = float("nan")
    stopped_early: bool = False
    resumed_from_epoch: int = 0
    wall_time_s: float = 0.0



def validation_scores(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """BLEU-4 and CIDEr-D (0–100 scale) of already normalized captions with pycocoevalcap's
    scorers, without the Java tokenizer: the per-epoch validation scores (the test split goes
    through the full pipeline of :mod:`privbench.captioning.metrics`)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    gts = {i: list(refs) for i, refs in enumerate(references)}
    res = {i: [c] for i, c in enumerate(candidates)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    return {"bleu_4": 100.0 * float(bleu[3]), "cider": 100.0 * float(cider)}


def _check_measurements(x: torch.Tensor, what: str) -> None:
    if x.dim() != 4 or x.shape[0] == 0:
        raise DataError(f"{what} measurements must be a non-empty (N, C, H, W) tensor; got shape {tuple(x.shape)}.")
    if not torch.isfinite(x).all():
        raise DataError(f"{what} measurements contain NaN or infinite values.")


def random_shift(x: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of ``x`` by up to ``fraction`` of its side in each direction (edge
    values extend into the uncovered border)."""
    height, width = x.shape[-2:]
    max_dy, max_dx = int(round(height * fraction)), int(round(width * fraction))
    if not (max_dy or max_dx):
        return x
    padded = F.pad(x, (max_dx, max_dx, max_dy, max_dy), mode="replicate")
    dy = torch.randint(0, 2 * max_dy + 1, (x.shape[0],), generator=generator).tolist()
    dx = torch.randint(0, 2 * max_dx + 1, (x.shape[0],), generator=generator).tolist()
    return torch.stack([padded[i, :, y : y + height, z : z + width] for i, (y, z) in enumerate(zip(dy, dx))])


def _batches(count: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    batches = list(torch.randperm(count, generator=generator).split(batch_size))
    if len(batches) > 1 and batches[-1].numel() < 2:  # a 1-image batch breaks batch norm
        batches.pop()
    return batches


@torch.no_grad()
def validation_loss(model: CaptionModel, x: torch.Tensor, captions: EncodedCaptions, regularization: float,
                    batch_size: int, device: torch.device) -> float:
    """Mean per-caption loss (NLL + λ·penalty) of the teacher-forced references."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for images in torch.arange(x.shape[0]).split(batch_size):
        rows = captions.rows_of_images(images)
        features = model.features(x[images].to(device))
        position = {int(i): p for p, i in enumerate(images)}
        feature_rows = torch.tensor([position[int(i)] for i in captions.image_index[rows]], device=device)
        tokens, steps = captions.tokens[rows].to(device), captions.steps[rows].to(device)
        logits, attention = model.decoder(features[feature_rows], tokens, steps)
        loss, _ = caption_loss(logits, tokens, steps, attention, regularization)
        total += float(loss) * rows.numel()
        count += rows.numel()
    model.train(was_training)
    return total / max(count, 1)


def train_captioner(
    model: CaptionModel,
    vocabulary: Vocabulary,
    train_x: torch.Tensor,
    train_captions: EncodedCaptions,
    val_x: torch.Tensor,
    val_captions: EncodedCaptions,
    val_references: Sequence[Sequence[str]],
    config: CaptionTrainConfig,
    model_config: CaptionModelConfig,
    ctx: RunContext,
    name: str,
    max_words: int,
    beam_size: int = 1,
) -> tuple[CaptionModel, CaptionHistory]:
    """Train ``model`` (teacher forcing, 2PSC loss) with early stopping on validation CIDEr-D.

    ``val_references``: the validation captions, normalized (:func:`normalize_caption`), that
    the validation captions (beam search with ``beam_size``) are scored against.
    """
    started = time.perf_counter()
    _check_measurements(train_x, f"{name}: training")
    _check_measurements(val_x, f"{name}: validation")
    if val_x.shape[1:] != train_x.shape[1:]:
        raise DataError(
            f"{name}: validation measurements have shape {tuple(val_x.shape[1:])} but training measurements "
            f"{tuple(train_x.shape[1:])}; both splits must go through the same encoder."
        )
    if int(train_captions.image_index.max()) >= train_x.shape[0] or len(val_references) != val_x.shape[0]:
        raise DataError(f"{name}: the captions do not match the measurements (one list of references per image).")
    device = ctx.device
    train_x, val_x = train_x.float(), val_x.float()
    regularization = model_config.attention_regularization

    torch.manual_seed(ctx.seed)
    model.features.set_standardization(*channel_statistics(train_x))
    model.to(device)
    steps_per_epoch = len(_batches(train_x.shape[0], config.batch_size, torch.Generator().manual_seed(0)))
    optimizer = torch.optim.AdamW(
        [
            {"params": model.features.parameters(), "lr": config.encoder_lr},
            {"params": model.decoder.parameters(), "lr": config.decoder_lr},
        ],
        weight_decay=config.weight_decay,
    )
    # One-cycle schedule as in privbench.nn.training: 20 % warm-up, cosine decay.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[config.encoder_lr, config.decoder_lr],
        total_steps=config.epochs * steps_per_epoch,
        pct_start=0.2,
        anneal_strategy="cos",
        div_factor=25.0,
        final_div_factor=1e4,
    )
    signature = stable_hash(
        {
            "format": CHECKPOINT_FORMAT,
            "name": name,
            "config": config.model_dump(mode="json"),
            "model_config": model_config.model_dump(mode="json"),
            "vocabulary": vocabulary.words,
            "max_words": max_words,
            "beam_size": beam_size,
            "model": [[k, list(v.shape)] for k, v in sorted(model.state_dict().items())],
            "train": [_fingerprint(train_x), _fingerprint(train_captions.tokens), _fingerprint(train_captions.image_index)],
            "val": [_fingerprint(val_x), _fingerprint(val_captions.tokens), list(map(list, val_references))],
            "seed": ctx.seed,
        },
        length=32,
    )
    state = TrainingState(
        model, optimizer, scheduler, CaptionHistory(), signature=signature, path=ctx.checkpoint_path(name), ctx=ctx,
        name=name, worst_score=(float("-inf"), float("-inf")),  # (val CIDEr-D, -val loss)
    )
    state.resume()
    history = state.history

    with ctx.progress(config.epochs, f"train {name}") as bar:
        if state.epoch:
            bar.update(state.epoch)
        while not state.finished and state.epoch < config.epochs:
            epoch = state.epoch
            epoch_started = time.perf_counter()
            generator = torch.Generator().manual_seed(_epoch_seed(ctx.seed, epoch))
            torch.manual_seed(_epoch_seed(ctx.seed, epoch))  # dropout masks
            model.train()
            total_loss, total_nll, total_penalty, batches = 0.0, 0.0, 0.0, 0
            for images in _batches(train_x.shape[0], config.batch_size, generator):
                rows = train_captions.rows_of_images(images)
                features = model.features(random_shift(train_x[images], config.augment_shift, generator).to(device))
                position = {int(i): p for p, i in enumerate(images)}
                feature_rows = torch.tensor([position[int(i)] for i in train_captions.image_index[rows]], device=device)
                tokens, steps = train_captions.tokens[rows].to(device), train_captions.steps[rows].to(device)
                logits, attention = model.decoder(features[feature_rows], tokens, steps)
                loss, parts = caption_loss(logits, tokens, steps, attention, regularization)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                total_loss += float(loss.detach())
                total_nll += parts["nll_per_word"]
                total_penalty += parts["attention_penalty"]
                batches += 1
            val_loss = validation_loss(model, val_x, val_captions, regularization, config.eval_batch_size, device)
            val_candidates = generate_captions(
                model, val_x, vocabulary, beam_size=beam_size, max_words=max_words, batch_size=config.eval_batch_size,
                device=device,
            )
            val_scores = validation_scores(val_candidates, val_references)
            val_bleu = val_scores["bleu_4"]
            history.epochs.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": total_loss / max(batches, 1),
                    "train_nll_per_word": total_nll / max(batches, 1),
                    "train_attention_penalty": total_penalty / max(batches, 1),
                    "val_loss": val_loss,
                    "val_bleu_4": val_bleu,
                    "val_cider": val_scores["cider"],
                    "time_s": time.perf_counter() - epoch_started,
                }
            )
            if state.end_epoch((val_scores["cider"], -val_loss), config.patience, config.epochs):
                history.best_val_cider = val_scores["cider"]
                history.best_val_bleu_4 = val_bleu
                history.best_val_loss = val_loss
            state.save()
            bar.update(1, loss=history.epochs[-1]["train_loss"], val_cider=val_scores["cider"])

    state.restore_best()
    history.wall_time_s += time.perf_counter() - started
    return model, history


def longest_caption(captions: Iterable[Iterable[str]]) -> int:
    """The number of words of the longest caption."""
    return max((len(tokenize(text)) for texts in captions for text in texts), default=0)


__all__ = [
    "AttentionLSTMDecoder",
    "CaptionHistory",
    "CaptionModel",
    "CaptionModelConfig",
    "CaptionTrainConfig",
    "EncodedCaptions",
    "FEATURE_EXTRACTORS",
    "MeasurementFeatures",
    "SmallResNetTrunk",
    "SoftAttention",
    "Vocabulary",
    "beam_search",
    "build_caption_model",
    "caption_loss",
    "doubly_stochastic_penalty",
    "encode_captions",
    "generate_captions",
    "greedy_decode",
    "load_imagenet_state",
    "longest_caption",
    "normalize_caption",
    "resnet101_trunk",
    "tokenize",
    "train_captioner",
    "validation_scores",
]
