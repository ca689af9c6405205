"""Reconstruction (inversion) attack: can the scene be recovered from the measurement?

The strongest adversary has paired data: it trains a U-Net-style decoder from measurements back
to the clean crops of the identity training split, then on the test split we report

- PSNR and SSIM between reconstruction and clean crop;
- the top-1 accuracy of a **clean-trained** face-ID classifier on the reconstructions (the
  headline: identity recovered by inverting the camera; chance = 1 / identities);
- 2PSC's distortion numbers: PSNR and SSIM between the measurement itself and the clean crop,
  on the common grid of :func:`privbench.nn.imaging.to_common_grid`.

The clean classifier depends only on the data and its config, so it is trained once and shared
by every encoder's cell through the content-addressed cache.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from privbench.api.config import stable_hash
from privbench.api.evaluation import (
    EvalInputs,
    EvalResult,
    Evaluation,
    MetricSpec,
    Protocol,
    RunContext,
)
from privbench.api.items import ItemScores
from privbench.api.measurements import (
    Measurements,
    as_measurements,
    content_signature,
    in_memory,
    is_small,
    streamed_moments,
)
from privbench.api.registry import register_attack
from privbench.nn.classifiers import build_classifier
from privbench.nn.fit import FitHistory, fit, shuffled_batches
from privbench.nn.imaging import INTENSITY_RANGE, psnr, to_common_grid
from privbench.nn.training import (
    ClassifierConfig,
    fit_new_classifier,
    predict_logits,
)

PART = "identities"
#: Checkpoint format of the decoder's run of :func:`fit` (part of its signature).
DECODER_CHECKPOINT_FORMAT = 1


class ReconstructionConfig(ClassifierConfig):
    """Decoder size and budget; ``model``/``training`` configure the clean face-ID classifier."""

    decoder_width: int = Field(24, ge=4, le=256, description="channels of the U-Net's first level")
    decoder_levels: int = Field(
        2, ge=1, le=4, description="number of downsampling levels of the U-Net"
    )
    epochs: int = Field(8, ge=1, le=1000)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(2e-3, gt=0)
    patience: int = Field(
        3, ge=1, description="epochs without validation improvement before stopping"
    )
    max_train_images: int | None = Field(
        None, ge=16, description="subsample the training crops (speed)"
    )


class _ConvBlock(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UNetDecoder(nn.Module):
    """U-Net (Ronneberger et al. 2015) from a measurement, resampled to the scene grid, to RGB.

    The measurement is first brought to the output size bilinearly (so any measurement shape
    works), then encoded and decoded with skip connections; a sigmoid gives intensities in [0, 1].
    """

    def __init__(
        self, in_channels: int, out_size: tuple[int, int], width: int = 24, levels: int = 2
    ) -> None:
        super().__init__()
        self.out_size = tuple(out_size)
        widths = [width * 2**i for i in range(levels + 1)]
        self.down = nn.ModuleList([_ConvBlock(in_channels, widths[0])])
        for i in range(levels):
            self.down.append(_ConvBlock(widths[i], widths[i + 1]))
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for i in reversed(range(levels)):
            self.up.append(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2))
            self.merge.append(_ConvBlock(widths[i] * 2, widths[i]))
        self.out = nn.Conv2d(widths[0], 3, 1)
        self.register_buffer("input_mean", torch.zeros(in_channels))
        self.register_buffer("input_std", torch.ones(in_channels))

    def forward(self, measurement: torch.Tensor) -> torch.Tensor:
        x = (measurement - self.input_mean.view(1, -1, 1, 1)) / self.input_std.view(1, -1, 1, 1)
        if x.shape[-2:] != self.out_size:
            x = F.interpolate(x, size=self.out_size, mode="bilinear", align_corners=False)
        skips = []
        for index, block in enumerate(self.down):
            if index:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = up(x)
            skip = skips.pop()
            if x.shape[-2:] != skip.shape[-2:]:  # odd sizes: align to the skip connection
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = merge(torch.cat([x, skip], dim=1))
        return torch.sigmoid(self.out(x))


def ssim(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    # imported on use: torchmetrics takes seconds to import (every run loads this plugin)
    from torchmetrics.functional.image import structural_similarity_index_measure

    return float(
        structural_similarity_index_measure(estimate.float(), reference.float(), data_range=1.0)
    )


def _input_statistics(x: Measurements | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (unbiased) standard deviation of the decoder's training inputs:
    exact in memory for a small split, streamed for a large one."""
    if is_small(x):
        values = in_memory(x)
        flat = values.transpose(0, 1).reshape(values.shape[1], -1)
        return flat.mean(1), flat.std(1)
    mean, variance, count = streamed_moments(x)
    return mean.float(), (variance * count / max(count - 1, 1)).sqrt().float()


def _mean_l1(attack, decoder, x, y, device) -> float:
    """Mean L1 between the decoder's reconstructions of ``x`` and the images ``y``."""
    if is_small(x) and is_small(y):
        return float(F.l1_loss(attack.reconstruct(decoder, x, device), in_memory(y)))
    total, count = 0.0, 0
    order = list(torch.arange(len(x)).split(128))
    for measured, clean in zip(x.batches(order, device), y.batches(order, device)):
        decoder.eval()
        with torch.no_grad():
            total += float(F.l1_loss(decoder(measured), clean, reduction="sum"))
        count += clean.numel()
    return total / max(count, 1)


@register_attack("reconstruction")
class Reconstruction(Evaluation):
    """Inversion attack: a U-Net trained on (measurement, clean) pairs; identity of its output."""

    Config = ReconstructionConfig
    role = "privacy"
    #: 2: measurements are brought onto the scene's grid by the encoder's declared range, not
    #: by the maximum of their batch.
    version = "2"
    protocol = Protocol.RETRAINED
    requires = (PART,)
    metrics: ClassVar[dict[str, MetricSpec]] = {
        "recon_face_id_top1": MetricSpec(
            True, "clean-trained face-ID top-1 on reconstructions (fraction)"
        ),
        "recon_psnr_db": MetricSpec(True, "PSNR of reconstructions vs clean crops (dB)"),
        "recon_ssim": MetricSpec(True, "SSIM of reconstructions vs clean crops"),
        "measurement_psnr_db": MetricSpec(
            True, "PSNR of the measurement vs clean crop on a common grid (dB)"
        ),
        "measurement_ssim": MetricSpec(
            True, "SSIM of the measurement vs clean crop on a common grid"
        ),
        "clean_face_id_top1": MetricSpec(
            True, "the clean-trained classifier on clean test crops (reference)"
        ),
    }
    headline = "recon_face_id_top1"

    # -- the shared clean classifier -------------------------------------------------------
    def clean_classifier(self, inputs: EvalInputs, ctx: RunContext):
        cfg = self.config
        num_classes = inputs.num_classes(PART)
        key = stable_hash(
            {
                "data": inputs.data.fingerprint,
                "model": cfg.model,
                "width": cfg.width_multiplier,
                "training": cfg.training.model_dump(mode="json"),
                "seed": ctx.seed,
            }
        )
        shape = tuple(inputs.data.part(PART).train.images.shape[1:])

        def train_new():
            model, _ = fit_new_classifier(
                cfg,
                num_classes,
                inputs.clean(PART, "train"),
                inputs.labels(PART, "train"),
                inputs.clean(PART, "val"),
                inputs.labels(PART, "val"),
                RunContext(device=ctx.device, seed=ctx.seed, progress=ctx.progress, log=ctx.log),
                "clean face-ID classifier",
            )
            return model

        if ctx.cache is None:
            return train_new().eval()
        trained = []

        def build() -> dict[str, torch.Tensor]:
            trained.append(train_new())
            return {k: v.cpu() for k, v in trained[0].state_dict().items()}

        # built under the key's lock: concurrent cells wait for one training and load its weights
        obtained = ctx.cache.obtain("models", f"clean-face-id-{key}", build)
        if not obtained.from_cache:
            return trained[0].eval()
        model = build_classifier(
            cfg.model, shape, num_classes, width_multiplier=cfg.width_multiplier
        )
        model.load_state_dict(obtained.value)
        return model.to(ctx.device).eval()

    # -- the decoder ------------------------------------------------------------------------
    def fit_decoder(self, inputs: EvalInputs, ctx: RunContext) -> UNetDecoder:
        """Train the U-Net on (measurement, clean) pairs with an L1 loss on :func:`fit`, early
        stopping on the validation L1 (better by more than 1e-5); returns its best epoch."""
        cfg = self.config
        device = ctx.device
        generator = torch.Generator().manual_seed(ctx.seed)
        torch.manual_seed(ctx.seed)
        train_y, train_x = inputs.clean(PART, "train"), inputs.encoded(PART, "train")
        if cfg.max_train_images is not None and train_x.shape[0] > cfg.max_train_images:
            keep = torch.randperm(train_x.shape[0], generator=generator)[: cfg.max_train_images]
            train_x, train_y = train_x[keep], train_y[keep]
        val_y, val_x = inputs.clean(PART, "val"), inputs.encoded(PART, "val")
        decoder = UNetDecoder(
            train_x.shape[1], tuple(train_y.shape[-2:]), cfg.decoder_width, cfg.decoder_levels
        )
        mean, std = _input_statistics(train_x)
        decoder.input_mean.copy_(mean)
        decoder.input_std.copy_(std.clamp_min(1e-6))
        # channels-last: 1.2-1.5× faster conv steps on the CPU (benchmarks/bench_training.py)
        decoder.to(device=device, memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(decoder.parameters(), lr=cfg.lr)
        train_x = as_measurements(train_x, "reconstruction: training measurements")
        train_y = as_measurements(train_y, "reconstruction: training images")

        def train_epoch(epoch: int, generator: torch.Generator) -> dict[str, float]:
            total, steps = 0.0, 0
            order = shuffled_batches(train_x.shape[0], cfg.batch_size, generator, drop_single=False)
            pairs = zip(train_x.batches(order, device), train_y.batches(order, device))
            for measured, clean in pairs:
                loss = F.l1_loss(decoder(measured), clean)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
                steps += 1
            return {"train_l1": total / max(1, steps)}

        def validate() -> tuple[float, dict[str, float]]:
            val_l1 = _mean_l1(self, decoder, val_x, val_y, device)
            return -val_l1, {"val_l1": val_l1}

        fit(
            decoder,
            name="reconstruction-decoder",
            ctx=ctx,
            epochs=cfg.epochs,
            optimizer=optimizer,
            train_epoch=train_epoch,
            validate=validate,
            signature=self._decoder_signature(train_x, val_x, ctx),
            history=FitHistory(),
            worst_score=float("-inf"),
            patience=cfg.patience,
            min_delta=1e-5,
            show=("val_l1",),
            generator=generator,
        )
        return decoder

    def _decoder_signature(self, train_x, val_x, ctx) -> str:
        """What the decoder's checkpoint must match to be resumed: config, measurements, seed."""
        return stable_hash(
            {
                "format": DECODER_CHECKPOINT_FORMAT,
                "config": self.config_dict(),
                "measurements": [content_signature(train_x), content_signature(val_x)],
                "seed": ctx.seed,
            },
            length=32,
        )

    @staticmethod
    @torch.no_grad()
    def reconstruct(
        decoder: UNetDecoder,
        measurements: Measurements | torch.Tensor,
        device,
        batch_size: int = 128,
    ) -> torch.Tensor:
        decoder.eval()
        source = as_measurements(measurements, "reconstruction: measurements")
        parts = [decoder(chunk).cpu() for chunk in source.split(batch_size, device)]
        return torch.cat(parts)

    def test_scores(
        self,
        classifier,
        decoder,
        clean: torch.Tensor,
        measured: torch.Tensor,
        labels,
        device,
        value_range: tuple[float, float] = INTENSITY_RANGE,
    ) -> tuple[dict[str, float], torch.Tensor]:
        """The attack's scores on test images ``clean`` and their ``measured`` measurements
        (``value_range``: the encoder's declared measurement range), and which reconstructions
        the clean classifier identified."""
        recon = self.reconstruct(decoder, measured, device)
        on_grid = to_common_grid(clean, measured, value_range).clamp(0, 1)
        identified = predict_logits(classifier, recon, device=device).argmax(1) == labels
        clean_top1 = float(
            (predict_logits(classifier, clean, device=device).argmax(1) == labels).float().mean()
        )
        return {
            "recon_face_id_top1": float(identified.float().mean()),
            "recon_psnr_db": float(psnr(clean, recon).mean()),
            "recon_ssim": ssim(clean, recon),
            "measurement_psnr_db": float(psnr(clean, on_grid).mean()),
            "measurement_ssim": ssim(clean, on_grid),
            "clean_face_id_top1": clean_top1,
        }, identified

    def evaluate(self, inputs: EvalInputs, ctx: RunContext) -> EvalResult:
        classifier = self.clean_classifier(inputs, ctx)
        decoder = self.fit_decoder(inputs, ctx)
        clean, measured = inputs.clean(PART, "test"), inputs.encoded(PART, "test")
        labels = inputs.labels(PART, "test")
        if is_small(clean) and is_small(measured):  # the whole split at once (exact means)
            metrics, identified = self.test_scores(
                classifier,
                decoder,
                in_memory(clean),
                in_memory(measured),
                labels,
                ctx.device,
                inputs.measurement_range,
            )
        else:  # batch by batch: per-image scores, averaged over the split
            sums: dict[str, float] = {}
            parts = []
            order = list(torch.arange(len(labels)).split(256))
            pairs = zip(order, clean.batches(order), measured.batches(order))
            for index, clean_batch, measured_batch in pairs:
                scores, part = self.test_scores(
                    classifier,
                    decoder,
                    clean_batch,
                    measured_batch,
                    labels[index],
                    ctx.device,
                    inputs.measurement_range,
                )
                parts.append(part)
                for name, value in scores.items():
                    sums[name] = sums.get(name, 0.0) + value * len(index)
            metrics = {name: total / len(labels) for name, total in sums.items()}
            identified = torch.cat(parts)
        return EvalResult(
            metrics,
            chance=1.0 / inputs.num_classes(PART),
            details={"decoder": "u-net"},
            items=ItemScores.per_item(identified.float()),
        )
