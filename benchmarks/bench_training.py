"""Training-step benchmark: the optimizer implementations and memory formats of the one loop.

    python benchmarks/bench_training.py            # about a minute on 2 CPU cores
    python benchmarks/bench_training.py --threads 1

Times one optimization step (forward, cross-entropy, backward, AdamW step) of the face-ID
attack's ``small-cnn`` and ``googlenet`` ×1/8 on a batch of 32 64×64 crops with 40 classes (the
quick preset's shapes), side by side in one process, interleaved rounds, medians:

- AdamW's three implementations: the per-parameter loop (torch's CPU default), ``foreach``
  (multi-tensor) and ``fused`` (one kernel);
- the model in ``channels_last`` (what the loop uses) vs contiguous NCHW, also for the
  captioner's CNN and the reconstruction U-Net.

Nothing else may compute on the machine while it runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import datetime, timezone

import torch
import torch.nn.functional as F

from privbench.nn.classifiers import build_classifier


def step_time(model, optimizer, x, y, steps: int) -> float:
    for _ in range(3):  # warm-up
        _step(model, optimizer, x, y)
    started = time.perf_counter()
    for _ in range(steps):
        _step(model, optimizer, x, y)
    return (time.perf_counter() - started) / steps


def _step(model, optimizer, x, y) -> None:
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"# bench_training.py, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} threads"
    )
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(32, 3, 64, 64, generator=generator)
    y = torch.randint(0, 40, (32,), generator=generator)
    variants = {
        "loop / channels_last": ({}, True),
        "foreach / channels_last": ({"foreach": True}, True),
        "fused / channels_last": ({"fused": True}, True),
        "fused / contiguous": ({"fused": True}, False),
    }
    for arch, width in (("small-cnn", 1.0), ("googlenet", 0.125)):
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, (options, channels_last) in variants.items():
                torch.manual_seed(0)
                model = build_classifier(arch, (3, 64, 64), 40, width_multiplier=width)
                inputs = x
                if channels_last:
                    model = model.to(memory_format=torch.channels_last)
                    inputs = x.contiguous(memory_format=torch.channels_last)
                optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, **options)
                times[name].append(step_time(model, optimizer, inputs, y, args.steps))
        base = statistics.median(times["loop / channels_last"])
        print(f"\n{arch} ×{width}: ms per step (median of {args.rounds} rounds)")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:26s} {median * 1e3:8.1f}   × {base / median:.2f} of the loop")
    memory_formats(args)
    return 0


def memory_formats(args) -> None:
    """channels-last vs contiguous for the other trained conv nets: the captioner's CNN on 32
    128×128 scenes and the reconstruction U-Net (width 16) on 64 crops, loss = mean square."""
    from privbench.attacks.reconstruction import UNetDecoder

    from privbench.captioning.config import CaptionModelConfig
    from privbench.captioning.model import build_feature_extractor

    generator = torch.Generator().manual_seed(0)
    cases = {
        "captioner CNN, 32×3×128×128": (
            lambda: build_feature_extractor(CaptionModelConfig(), (3, 128, 128)),
            torch.rand(32, 3, 128, 128, generator=generator),
        ),
        "U-Net decoder, 64×3×64×64": (
            lambda: UNetDecoder(3, (64, 64), 16, 2),
            torch.rand(64, 3, 64, 64, generator=generator),
        ),
    }
    for label, (build, x) in cases.items():
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for channels_last in (False, True):
                torch.manual_seed(0)
                model = build()
                inputs = x
                if channels_last:
                    model = model.to(memory_format=torch.channels_last)
                    inputs = x.contiguous(memory_format=torch.channels_last)
                optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
                times[channels_last].append(_square_step_time(model, optimizer, inputs, 8))
        contiguous, last = (statistics.median(times[k]) for k in (False, True))
        print(
            f"\n{label}: contiguous {contiguous * 1e3:.1f} ms, channels-last {last * 1e3:.1f} ms"
            f" per step (× {contiguous / last:.2f})"
        )


def _square_step_time(model, optimizer, x, steps: int) -> float:
    def step() -> None:
        loss = model(x).float().square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


if __name__ == "__main__":
    raise SystemExit(main())
