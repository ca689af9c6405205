"""Image captioning (2PSC): the utility of a privacy camera for describing scenes.

Protocol. A Show-Attend-Tell captioner (:mod:`privbench.captioning`: ResNet trunk, soft
attention with a gating scalar, the LSTM of 2PSC §2.2.2, the doubly stochastic attention
regularizer) is trained from scratch on the encoder's measurements of the training scenes and
their reference captions (teacher forcing), with early stopping on the validation split's
CIDEr-D. It then writes one caption per test scene by beam search, scored
against that scene's references with the COCO caption metrics (:mod:`privbench.captioning.metrics`:
BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, and SPICE where its models are present), on the 0–100
scale.

Headline: CIDEr-D. 2PSC's Table 1 ranks cameras by BLEU-4 (clean 2PSC-w 29.6, learned lens
28.9, low-res 17.4, defocus 16.3 on COCO), and BLEU-4 is reported here too, but BLEU rewards
n-grams that every reference shares, so one generic caption written for every image can score
high: on synthfaces ``quick``, whose five references per scene follow a small grammar, the
caption "a person with brown hair and a room" (what an under-trained captioner wrote for every
test scene) scores BLEU-4 45.3 on the test split, above the trained clean-camera captioner
(38.9). CIDEr-D weights n-grams by their inverse document frequency over the images, so what all
captions share counts for little and the same caption everywhere scores low (28.0 for that one,
below the most frequent training caption's 44.0 and the clean captioner's 77.2): it measures
whether the captions tell the scenes apart, the utility a privacy camera must keep. Early
stopping uses the validation CIDEr-D for the same reason.

Chance: the CIDEr-D of the trivial captioner that writes the most frequent training caption for
every test scene (scored through the same pipeline); its BLEU-4 and CIDEr-D are also reported as
``baseline_bleu_4`` and ``baseline_cider``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

from privbench.api.errors import DataError
from privbench.api.evaluation import (
    EvalInputs,
    EvalResult,
    Evaluation,
    EvaluationConfig,
    MetricSpec,
    RunContext,
)
from privbench.api.items import ItemScores
from privbench.api.registry import register_task
from privbench.captioning import (
    CaptionModelConfig,
    CaptionTrainConfig,
    Vocabulary,
    build_caption_model,
    encode_captions,
    generate_captions,
    longest_caption,
    normalize_caption,
    train_captioner,
)
from privbench.captioning.metrics import java_missing, most_frequent_caption, score_caption_sets

PART = "scenes"

#: Overrides of the ``paper`` preset (2PSC §2.2 and §2.4 on COCO): ResNet-101 with ImageNet weights
#: from a local file, 2PSC's learning rate 1e-4 for the feature extractor and the LSTM, 90 epochs,
#: 32 images per step. 2PSC gives no decoder sizes; these are Show-Attend-Tell's 512.
PAPER_PRESET: dict[str, Any] = {
    "model": {
        "feature_extractor": "resnet101",
        "imagenet_weights": "~/.cache/privbench/weights/resnet101-imagenet.pth",
        "min_feature_side": 8,
        "embed_dim": 512,
        "attention_dim": 512,
        "hidden_dim": 512,
        "dropout": 0.5,
    },
    "training": {
        "epochs": 90,
        "batch_size": 32,
        "encoder_lr": 1e-4,
        "decoder_lr": 1e-4,
        "patience": 10,
    },
    "min_word_count": 5,
    "beam_size": 3,
    "max_caption_words": 50,
}


class CaptioningConfig(EvaluationConfig):
    """Captioner, training budget, vocabulary and decoding (defaults: the quick preset)."""

    model: CaptionModelConfig = Field(default_factory=CaptionModelConfig)
    training: CaptionTrainConfig = Field(default_factory=CaptionTrainConfig)
    min_word_count: int = Field(
        5,
        ge=1,
        le=10_000,
        description="training-caption frequency a word needs to enter the vocabulary",
    )
    beam_size: int = Field(
        3, ge=1, le=50, description="beam width when captioning the test split (1: greedy)"
    )
    max_caption_words: int = Field(
        40,
        ge=1,
        le=200,
        description="reference captions are cut to this many words; generated ones stop there",
    )
    meteor: bool = Field(
        True, description="score METEOR (its Java scorer loads a paraphrase table: ~15 s per cell)"
    )
    spice: bool = Field(
        True, description="score SPICE when its Stanford CoreNLP models are present locally"
    )


@register_task("captioning")
class Captioning(Evaluation):
    """Describe the scene: a Show-Attend-Tell captioner trained and scored on the measurements."""

    Config = CaptioningConfig
    role = "utility"
    version = "1"
    requires = (PART,)
    metrics: ClassVar[dict[str, MetricSpec]] = {
        "cider": MetricSpec(True, "CIDEr-D of the beam-search captions of the test scenes (x100)"),
        "bleu_4": MetricSpec(True, "BLEU-4 (0-100), the metric of 2PSC's Table 1"),
        "bleu_1": MetricSpec(True, "BLEU-1 (0-100)"),
        "bleu_2": MetricSpec(True, "BLEU-2 (0-100)"),
        "bleu_3": MetricSpec(True, "BLEU-3 (0-100)"),
        "meteor": MetricSpec(True, "METEOR 1.5 (0-100)"),
        "rouge_l": MetricSpec(True, "ROUGE-L F-measure (0-100)"),
        "spice": MetricSpec(
            True, "SPICE F-score (0-100), only when its models are installed locally"
        ),
        "baseline_bleu_4": MetricSpec(
            True, "BLEU-4 of always writing the most frequent training caption"
        ),
        "baseline_cider": MetricSpec(
            True, "CIDEr-D of always writing the most frequent training caption (chance)"
        ),
    }
    headline = "cider"

    def missing_prerequisites(self) -> list[str]:
        reason = java_missing()
        return [reason] if reason else []

    def evaluate(self, inputs: EvalInputs, ctx: RunContext) -> EvalResult:
        config = self.config
        scenes = inputs.data.part(PART)
        train_refs, val_refs, test_refs = (scenes[s].captions for s in ("train", "val", "test"))
        for split, refs in (("train", train_refs), ("val", val_refs), ("test", test_refs)):
            if len(refs) != len(scenes[split]) or not len(refs):
                raise DataError(
                    f"captioning needs reference captions for every scene of the {split} split; it "
                    f"has {len(scenes[split])} scenes and {len(refs)} caption lists."
                )
        vocabulary = Vocabulary.build(
            (text for texts in train_refs for text in texts), config.min_word_count
        )
        max_words = min(config.max_caption_words, max(longest_caption(train_refs), 1))
        train_captions = encode_captions(vocabulary, train_refs, max_words)
        val_captions = encode_captions(vocabulary, val_refs, max_words)
        val_references = [
            [normalize_caption(t) for t in texts if normalize_caption(t)] for texts in val_refs
        ]

        train_x = inputs.encoded(PART, "train")
        torch.manual_seed(ctx.seed)
        model = build_caption_model(config.model, tuple(train_x.shape[1:]), len(vocabulary))
        model, history = train_captioner(
            model,
            vocabulary,
            train_x,
            train_captions,
            inputs.encoded(PART, "val"),
            val_captions,
            val_references,
            config.training,
            config.model,
            ctx,
            name="captioning",
            max_words=max_words,
            beam_size=config.beam_size,
        )
        candidates = generate_captions(
            model,
            inputs.encoded(PART, "test"),
            vocabulary,
            beam_size=config.beam_size,
            max_words=max_words,
            batch_size=config.training.eval_batch_size,
            device=ctx.device,
        )
        scorers = (
            ["bleu", "rouge", "cider"]
            + (["meteor"] if config.meteor else [])
            + (["spice"] if config.spice else [])
        )
        baseline_caption = most_frequent_caption(train_refs, normalize_caption)
        scores, baseline = score_caption_sets(
            [candidates, [baseline_caption] * len(test_refs)],
            test_refs,
            [scorers, ["bleu", "cider"]],
        )
        metrics = {
            **scores.metrics,
            "baseline_bleu_4": baseline.metrics["bleu_4"],
            "baseline_cider": baseline.metrics["cider"],
        }
        return EvalResult(
            metrics=metrics,
            chance=baseline.metrics["cider"],
            details={
                "model": config.model.feature_extractor,
                "vocabulary_size": len(vocabulary),
                "max_caption_words": max_words,
                "baseline_caption": baseline_caption,
                "sample_captions": [
                    {"candidate": c, "reference": refs[0]}
                    for c, refs in zip(candidates[:5], test_refs[:5])
                ],
                "skipped_metrics": scores.skipped,
                "training": history.summary(),
            },
            # CIDEr-D of the corpus is the mean of the per-scene scores (pycocoevalcap)
            items=ItemScores.per_item(scores.per_image["cider"]),
        )
