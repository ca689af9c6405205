"""Paper-scale data on one machine: memory and throughput of image stores and streamed measurements.

Writes a COCO-2014 folder of N and 4N generated JPEG pictures with captions (real JPEG files,
valid annotation JSON, official split scheme; nothing downloaded), then measures, each in a fresh
process so that its peak resident memory is its own:

- the load: decoding the folder into the image store (cold) and opening it again (warm);
- one training epoch of the captioning task's model (its quick-preset config) on the train split,
  through a fixed noise-free camera (gaussian-blur σ = 8, streamed: its float32 measurements are
  larger than the images) and through the learned lens with sensor noise (zernike-lens, streamed,
  fresh noise per batch), and, on N only, on the same blur measurements held in memory as one
  tensor (the path before image stores) — peak RSS and images/s;
- the same epoch on the blur measurements cached on disk (an on-disk float32 array read batch
  by batch: what data loading alone costs, against the in-memory tensor);
- the disk a cached encoder's measurements take (low-res 16 px, noise-free and smaller than
  the images, so it is cached) against the image store's size.

Run: ``python benchmarks/bench_data.py --images 400 --size 256 --out /tmp/bench-data``
(nothing else may compute meanwhile: the figures are wall-clock and memory).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

WORDS = "a man woman dog cat red blue street table plate sitting standing near with on of".split()


def write_coco_folder(root: Path, count: int, size: int, seed: int = 0) -> None:
    """``count`` train2014 pictures and 200 val2014 ones (val and test: 100 each, the same for
    every ``count``, so only the training split grows), five captions each."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for folder, total, first_id in (
        ("train2014", count, 1),
        ("val2014", 200, 10**6),
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for offset in range(total):
            coco_id = first_id + offset
            name = f"COCO_{folder}_{coco_id:012d}.jpg"
            low = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            picture = Image.fromarray(low).resize((size, size), Image.Resampling.BICUBIC)
            picture.save(root / folder / name, quality=90)
            images.append({"id": coco_id, "file_name": name, "width": size, "height": size})
            for j in range(5):
                words = rng.choice(WORDS, size=int(rng.integers(4, 9)))
                annotations.append(
                    {"id": coco_id * 10 + j, "image_id": coco_id, "caption": " ".join(words)}
                )
        (root / "annotations").mkdir(exist_ok=True)
        kind = folder.removesuffix("2014")
        (root / "annotations" / f"captions_{kind}2014.json").write_text(
            json.dumps({"images": images, "annotations": annotations})
        )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> dict:
    """One measurement in this (fresh) process; prints one JSON line."""
    import torch

    import privbench  # noqa: F401 - registers the plugins
    from privbench.api.adapter import load_dataset
    from privbench.api.encoder import encode_batches
    from privbench.api.evaluation import RunContext
    from privbench.api.measurements import ArrayMeasurements, EncodedImages
    from privbench.api.registry import TASKS, get_encoder
    from privbench.captioning.model import build_caption_model
    from privbench.captioning.training import train_captioner
    from privbench.captioning.vocabulary import Vocabulary, encode_captions, longest_caption

    torch.set_num_threads(2)
    started = time.perf_counter()
    data = load_dataset(
        "coco",
        {"path": args.folder, "split_scheme": "official", "image_size": args.size},
        Path(args.cache) / "datasets",
    )
    load_s = time.perf_counter() - started
    result = {"load_s": round(load_s, 2), "images": len(data.scenes.train)}
    if args.child == "load":
        result["store_mb"] = round(data.scenes.train.store.nbytes / 2**20, 1)
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        return result
    train = data.scenes.train
    encoder = get_encoder(
        args.encoder, **({"sigma_px": 8} if args.encoder == "gaussian-blur" else {})
    )
    if args.encoder == "zernike-lens":
        encoder.eval()
    config = TASKS.get("captioning").Config(training={"epochs": 1, "patience": None})
    refs = train.captions
    vocabulary = Vocabulary.build((t for texts in refs for t in texts), config.min_word_count)
    words = min(config.max_caption_words, longest_caption(refs))
    captions = encode_captions(vocabulary, refs, words)
    val = data.scenes.val
    val_captions = encode_captions(vocabulary, val.captions, words)
    name = f"{args.encoder} of train"
    if args.child == "memory":
        x = ArrayMeasurements(encode_batches(encoder, train.images), name)
    elif args.child == "cached":  # the measurements on disk, read batch by batch
        from privbench.api.cache import ArtifactCache
        from privbench.runs.cells import cached_measurements

        cache = ArtifactCache(args.cache)
        x = cached_measurements(cache, f"bench-{args.encoder}", encoder, train, name, "cpu")
    else:
        x = EncodedImages(train, encoder, name, ["bench", args.encoder])
    val_x = EncodedImages(val, encoder, "val", ["bench-val", args.encoder])
    torch.manual_seed(0)
    model = build_caption_model(config.model, tuple(x.shape[1:]), len(vocabulary))
    ctx = RunContext(seed=0)
    started = time.perf_counter()
    _, history = train_captioner(
        model,
        vocabulary,
        x,
        captions,
        val_x,
        val_captions,
        [[" ".join(t.split()) for t in texts] for texts in val.captions],
        config.training,
        config.model,
        ctx,
        "bench",
        words,
    )
    epoch_s = history.epochs[0].get("time_s")
    total_s = time.perf_counter() - started
    result.update(
        {
            "train_s": round(total_s, 2),
            "epoch_s": round(epoch_s, 2) if epoch_s else None,
            "images_per_s": round(len(train) / (epoch_s or total_s), 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
    )
    return result


def cached_disk(args: argparse.Namespace) -> dict:
    """Disk of a cached encoder's measurements (low-res 16 px) against the image store."""
    import privbench  # noqa: F401
    from privbench.api.adapter import load_dataset
    from privbench.api.cache import ArtifactCache
    from privbench.api.registry import get_encoder
    from privbench.runs.cells import cached_measurements

    data = load_dataset(
        "coco",
        {"path": args.folder, "split_scheme": "official", "image_size": args.size},
        Path(args.cache) / "datasets",
    )
    encoder = get_encoder("low-res", size_px=16)
    train = data.scenes.train
    cache = ArtifactCache(args.cache)
    measured = cached_measurements(cache, "bench-low-res", encoder, train, "low-res", "cpu")
    return {
        "store_mb": round(train.store.nbytes / 2**20, 1),
        "cached_measurements_mb": round(measured.values.nbytes / 2**20, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def run_child(folder: Path, cache: Path, mode: str, encoder: str, size: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--folder",
        str(folder),
        "--cache",
        str(cache),
        "--encoder",
        encoder,
        "--size",
        str(size),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="N (the larger size is 4N)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-data"))
    parser.add_argument("--child", choices=["load", "stream", "memory", "cached", "disk"])
    parser.add_argument("--folder")
    parser.add_argument("--cache")
    parser.add_argument("--encoder", default="gaussian-blur")
    args = parser.parse_args()
    if args.child:
        result = cached_disk(args) if args.child == "disk" else child(args)
        print(json.dumps(result))
        return
    rows = []
    for count in (args.images, 4 * args.images):
        folder, cache = args.out / f"coco-{count}", args.out / f"cache-{count}"
        if not (folder / "annotations").is_dir():
            write_coco_folder(folder, count, args.size)
        for mode, encoder in (
            ("load", "-"),  # cold: decodes into the store
            ("load", "-"),  # warm: opens the store
            ("stream", "gaussian-blur"),
            ("stream", "zernike-lens"),
            ("cached", "gaussian-blur"),
            *([("memory", "gaussian-blur")] if count == args.images else []),
            ("disk", "low-res"),
        ):
            result = run_child(folder, cache, mode, encoder, args.size)
            rows.append({"N": count, "mode": mode, "encoder": encoder, **result})
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
