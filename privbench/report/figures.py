"""Qualitative figure in the manner of 2PSC Fig. 3: what each camera shows, what an attacker gets
back.

One row per test image; the columns are the clean image, then for each encoder its measurement
(brought onto the scene's grid, :func:`privbench.nn.imaging.to_common_grid`, titled with the 2PSC
distortion numbers PSNR and SSIM against the clean image) and, when a reconstruction decoder is
given, the reconstruction attack's output (titled with its PSNR). Every panel carries the boxes
that each real, packaged face detector (:mod:`privbench.nn.face_models`) finds in it, one colour per
detector, computed on the same attacker view as the ``offtheshelf-face`` attack.

:func:`figure_images` picks the rows (identity test crops of the benchmark data, real LFW faces
and the astronaut shipped with scikit-image); :func:`fit_reconstructors` trains the
reconstruction attack's U-Net per encoder on the benchmark's identity split;
:func:`qualitative_figure` draws.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from privbench.api.encoder import encode_batches
from privbench.api.errors import InputError
from privbench.nn import face_models
from privbench.nn.imaging import psnr, to_common_grid

DETECTOR_COLOURS = {"opencv-haar": "#ffd400", "dlib-hog": "#00e5ff", "dlib-cnn": "#ff3df2"}


@dataclass
class FigureImage:
    """One row: a clean ``uint8 (3, H, W)`` image, its title, and where its face is expected.

    ``face_px``: the face's size in pixels (sets the detectors' resampling, as in the attack);
    ``tight_crop``: the face fills the image (the attacker then adds a border of context).
    """

    image: torch.Tensor
    title: str
    face_px: float | None = None
    tight_crop: bool = True

    def __post_init__(self) -> None:
        if self.image.dtype != torch.uint8 or self.image.dim() != 3 or self.image.shape[0] != 3:
            raise InputError(
                f"FigureImage {self.title!r} needs a uint8 (3, H, W) image; got "
                f"{self.image.dtype} {tuple(self.image.shape)}."
            )
        if self.face_px is None:
            self.face_px = float(min(self.image.shape[-2:]))


def find_faces(
    models, detectors: Sequence[str], scene_grid: torch.Tensor, row: FigureImage
) -> dict[str, np.ndarray]:
    """Boxes ``(k, 4)`` on the scene grid found by each detector in a ``(3, H, W)`` [0, 1] image."""
    scale = face_models.DETECTOR_FACE_PX / float(row.face_px)
    pad = round(0.25 * face_models.DETECTOR_FACE_PX) if row.tight_crop else 0
    view = face_models.detector_view(scene_grid, scale, pad)
    return {d: (models.detect(d, view) - pad) / scale for d in detectors}


def _psnr_text(reference: torch.Tensor, estimate: torch.Tensor) -> str:
    value = float(psnr(reference, estimate)[0])
    return "PSNR ∞ (identical)" if value >= 100 else f"PSNR {value:.1f} dB"


def _ssim(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    from torchmetrics.functional.image import structural_similarity_index_measure

    return float(
        structural_similarity_index_measure(
            estimate[None].float(), reference[None].float(), data_range=1.0
        )
    )


def qualitative_figure(
    rows: Sequence[FigureImage],
    encoders: Mapping[str, torch.nn.Module],
    path: str | Path,
    *,
    reconstructors: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
    detectors: Sequence[str] | None = face_models.DETECTORS,
    device: str | torch.device = "cpu",
    panel_inches: float = 1.9,
) -> Path:
    """Draw the figure (PNG) and return its path. ``reconstructors[label]`` maps a batch of
    measurements to reconstructions; ``detectors=None`` (or an empty list) draws no boxes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    if not rows:
        raise InputError("qualitative_figure needs at least one image row.")
    reconstructors = reconstructors or {}
    detectors = list(detectors or [])
    models = face_models.load_face_models() if detectors else None
    columns = ["clean"]
    for label in encoders:
        columns.append(label)
        if label in reconstructors:
            columns.append(f"{label}\nreconstruction")
    figure, axes = plt.subplots(
        len(rows),
        len(columns),
        figsize=(panel_inches * len(columns), panel_inches * len(rows) + 0.6),
        squeeze=False,
    )

    def show(ax, picture: torch.Tensor, title: str, boxes: dict[str, np.ndarray]) -> None:
        ax.imshow(picture.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        for detector, found in boxes.items():
            for x0, y0, x1, y1 in found:
                ax.add_patch(
                    Rectangle(
                        (x0 - 0.5, y0 - 0.5),
                        x1 - x0,
                        y1 - y0,
                        fill=False,
                        lw=1.4,
                        ec=DETECTOR_COLOURS[detector],
                    )
                )
        ax.set_title(title, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])

    for r, row in enumerate(rows):
        clean = row.image.float().unsqueeze(0) / 255.0
        boxes = find_faces(models, detectors, clean[0], row) if models else {}
        show(axes[r, 0], clean[0], row.title, boxes)
        c = 1
        for label, encoder in encoders.items():
            measurement = encode_batches(encoder, row.image.unsqueeze(0), device=device)
            on_grid = to_common_grid(clean, measurement, encoder.measurement_range()).clamp(0, 1)
            boxes = find_faces(models, detectors, on_grid[0], row) if models else {}
            title = f"{label}\n{_psnr_text(clean, on_grid)}, SSIM {_ssim(clean[0], on_grid[0]):.2f}"
            show(axes[r, c], on_grid[0], title, boxes)
            c += 1
            if label in reconstructors:
                recon = reconstructors[label](measurement).float().clamp(0, 1)
                if recon.shape[-2:] != clean.shape[-2:]:
                    recon = F.interpolate(
                        recon, size=clean.shape[-2:], mode="bilinear", align_corners=False
                    )
                boxes = find_faces(models, detectors, recon[0], row) if models else {}
                show(axes[r, c], recon[0], f"reconstruction\n{_psnr_text(clean, recon)}", boxes)
                c += 1
    if detectors:
        handles = [Patch(fill=False, ec=DETECTOR_COLOURS[d], label=d) for d in detectors]
        figure.legend(
            handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False
        )
    figure.tight_layout(rect=(0, 0.04 if detectors else 0, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def figure_images(
    data=None, *, test_crops: int = 2, lfw_faces: int = 2, astronaut_px: int | None = 128
) -> list[FigureImage]:
    """Rows for the figure: identity test crops of ``data`` (if given), real LFW faces of
    scikit-image's ``lfw_subset`` at 64 px, and the astronaut at ``astronaut_px`` (None: left
    out)."""
    rows: list[FigureImage] = []
    if data is not None and test_crops:
        test = data.part("identities").test
        picks = torch.linspace(0, len(test) - 1, test_crops).round().long().unique()
        rows += [
            FigureImage(
                test.images[i], f"{data.name} test crop\n{test.class_names[int(test.labels[i])]}"
            )
            for i in picks
        ]
    if lfw_faces:
        faces, _ = face_models.lfw_subset(lfw_faces, 64)
        rows += [FigureImage(face, f"LFW face {i} (real)") for i, face in enumerate(faces)]
    if astronaut_px:
        scene, box = face_models.astronaut(astronaut_px)
        rows.append(
            FigureImage(
                scene[0],
                "astronaut (real)",
                face_px=max(box[2] - box[0], box[3] - box[1]),
                tight_crop=False,
            )
        )
    return rows


def _reconstructor(decoder, device) -> Callable[[torch.Tensor], torch.Tensor]:
    """measurements ↦ the reconstruction attack's output with ``decoder``."""
    from privbench.attacks.reconstruction import Reconstruction

    return lambda measurement: Reconstruction.reconstruct(decoder, measurement, device)


def fit_reconstructors(
    data,
    encoders: Mapping[str, torch.nn.Module],
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    **config,
) -> dict:
    """Train the reconstruction attack's U-Net per encoder on ``data``'s identity split (paired
    measurements and clean crops, the attack's own procedure and ``config``); returns
    ``label -> measurements ↦ reconstructions``."""
    from privbench.api.evaluation import EvalInputs, RunContext
    from privbench.attacks.reconstruction import Reconstruction

    attack = Reconstruction(**config)
    device = torch.device(device)
    reconstructors = {}
    for label, encoder in encoders.items():

        def encode(part: str, split: str, encoder=encoder) -> torch.Tensor:
            torch.manual_seed(0)
            return encode_batches(encoder, data.part(part)[split].images, device=device)

        decoder = attack.fit_decoder(
            EvalInputs(data, encode, label, measurement_range=encoder.measurement_range()),
            RunContext(device=device, seed=seed),
        )
        reconstructors[label] = _reconstructor(decoder, device)
    return reconstructors


def benchmark_figure(
    spec=None,
    *,
    out_dir: str | Path,
    preset: str | None = None,
    encoders: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    test_crops: int = 2,
    lfw_faces: int = 2,
    astronaut_px: int | None = 128,
    reconstruction: bool = True,
    detectors: Sequence[str] | None = face_models.DETECTORS,
    progress=None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """The figure for a benchmark's encoders, written to ``out_dir/fig3.png``.

    The encoders are the run's: learned ones with their designer's fitted weights from the
    artifact cache (fitted now when ``privbench run`` has not fitted them yet). The
    reconstruction column shows the spec's own ``reconstruction`` attack: its decoder is read
    from the checkpoint that attack's cell left in the cache (so the figure shows exactly the
    decoder the leaderboard scored), and trained with that cell's config and seed otherwise.
    """
    from privbench.api.cache import ArtifactCache
    from privbench.report.leaderboard import QUALITATIVE_FIGURE
    from privbench.runs.cells import cell_inputs
    from privbench.runs.runner import Runner, resolve_device
    from privbench.runs.spec import resolve_spec

    spec = resolve_spec(spec, preset=preset, encoders=list(encoders) if encoders else None, log=log)
    torch_device = resolve_device(device)
    runner = Runner(
        spec,
        store=None,
        device=torch_device,
        cache=ArtifactCache(cache_dir),
        progress=progress,
        log=log or (lambda message: None),
    )
    data = runner.load_data()
    cells, fitted = runner.plan(data)
    reconstructors = {}
    if reconstruction:
        # The first seed's cell of the spec's own reconstruction attack, per encoder.
        for cell in cells:
            if cell.evaluation.name != "reconstruction" or cell.seed != spec.seeds[0]:
                continue
            if cell.encoder_entry.display_name in reconstructors:
                continue
            inputs, ctx = cell_inputs(cell, runner.progress, runner.log)
            torch.manual_seed(cell.seed)
            decoder = cell.evaluation.fit_decoder(inputs, ctx)
            reconstructors[cell.encoder_entry.display_name] = _reconstructor(decoder, torch_device)
    rows = figure_images(
        data, test_crops=test_crops, lfw_faces=lfw_faces, astronaut_px=astronaut_px
    )
    return qualitative_figure(
        rows,
        {label: record.encoder for label, record in fitted.items()},
        Path(out_dir) / QUALITATIVE_FIGURE,
        reconstructors=reconstructors,
        detectors=detectors,
        device=torch_device,
    )
