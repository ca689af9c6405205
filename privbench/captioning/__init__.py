"""Image captioning on sensor measurements: 2PSC's decoder (§2.2), after Show, Attend and Tell.

2PSC (Fig. 1) captions the images of a privacy camera with a CNN feature extractor followed by
an LSTM with soft attention (Xu et al., ICML 2015). The package is split by concern:

- :mod:`~privbench.captioning.vocabulary`: words, the vocabulary (``<pad> <start> <end> <unk>``
  then the training words seen at least ``min_count`` times) and the padded caption rows;
- :mod:`~privbench.captioning.config`: model sizes and training budget;
- :mod:`~privbench.captioning.model`: the ResNet feature extractor (§2.2.1) and the attention
  LSTM decoder (§2.2.2);
- :mod:`~privbench.captioning.decoding`: greedy decoding and beam search;
- :mod:`~privbench.captioning.training`: the 2PSC §2.3 loss under teacher forcing and the
  trainer, on the one loop :func:`privbench.nn.fit.fit`;
- :mod:`~privbench.captioning.metrics`: the COCO caption metrics (pycocoevalcap).

The names other code uses are re-exported here.
"""

from privbench.captioning.config import FEATURE_EXTRACTORS, CaptionModelConfig, CaptionTrainConfig
from privbench.captioning.decoding import beam_search, generate_captions, greedy_decode
from privbench.captioning.metrics import validation_scores
from privbench.captioning.model import (
    AttentionLSTMDecoder,
    CaptionModel,
    DecoderState,
    MeasurementFeatures,
    SmallResNetTrunk,
    SoftAttention,
    build_caption_model,
    build_feature_extractor,
    load_imagenet_state,
    resnet101_trunk,
)
from privbench.captioning.training import (
    CaptionHistory,
    TeacherForcedLoss,
    caption_loss,
    doubly_stochastic_penalty,
    random_shift,
    step_mask,
    teacher_forcing_loss,
    train_captioner,
    validation_loss,
)
from privbench.captioning.vocabulary import (
    END,
    PAD,
    SPECIAL_TOKENS,
    START,
    UNK,
    EncodedCaptions,
    Vocabulary,
    encode_captions,
    longest_caption,
    normalize_caption,
    tokenize,
)

__all__ = [
    "END",
    "FEATURE_EXTRACTORS",
    "PAD",
    "SPECIAL_TOKENS",
    "START",
    "UNK",
    "AttentionLSTMDecoder",
    "CaptionHistory",
    "CaptionModel",
    "CaptionModelConfig",
    "CaptionTrainConfig",
    "DecoderState",
    "EncodedCaptions",
    "MeasurementFeatures",
    "SmallResNetTrunk",
    "SoftAttention",
    "TeacherForcedLoss",
    "Vocabulary",
    "beam_search",
    "build_caption_model",
    "build_feature_extractor",
    "caption_loss",
    "doubly_stochastic_penalty",
    "encode_captions",
    "generate_captions",
    "greedy_decode",
    "load_imagenet_state",
    "longest_caption",
    "normalize_caption",
    "random_shift",
    "resnet101_trunk",
    "step_mask",
    "teacher_forcing_loss",
    "tokenize",
    "train_captioner",
    "validation_loss",
    "validation_scores",
]
