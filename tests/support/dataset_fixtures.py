"""Tiny copies of the real datasets, written in their published on-disk formats.

Every writer uses the real file names and annotation syntax (WIDER's ``*_bbx_gt.txt``, FDDB's
``FDDB-fold-XX-ellipseList.txt``, VGGFace2's ``bb_landmark/loose_bb_*.csv``, COCO's
``captions_*2014.json`` / ``instances_*2014.json``, Karpathy's ``dataset_coco.json``, LFW's
``lfw/<Name>/<Name>_0001.jpg`` and ``pairs.txt``); only the number and size of the pictures
are small. Pictures carry drawn content at the annotated places (a face-coloured patch inside
each box or ellipse) so tests can check that crops and box mappings land on it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

FACE_RGB = (230, 40, 40)  # what is drawn inside every annotated face
BACKGROUND_RGB = (20, 60, 200)


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, quality=95)
    else:
        image.save(path)


def _noisy_background(
    width: int, height: int, rng: np.random.Generator, rgb=BACKGROUND_RGB
) -> Image.Image:
    base = np.empty((height, width, 3), dtype=np.float32)
    base[:] = rgb
    base += rng.normal(0, 6, size=base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


# -- VGGFace2 ------------------------------------------------------------------------------------
def identity_colour(index: int) -> tuple[int, int, int]:
    return (
        (53 * index + 40) % 200 + 30,
        (97 * index + 90) % 200 + 30,
        (151 * index + 10) % 200 + 30,
    )


def write_vggface2(
    root: Path,
    test_counts: dict[str, int],
    train_counts: dict[str, int] | None = None,
    seed: int = 0,
) -> dict:
    """``ROOT/{test,train}/<id>/<NNNN>_01.jpg`` and ``ROOT/bb_landmark/loose_bb_{test,train}.csv``.

    Each picture is grey noise with a loose box filled with the identity's colour; returns
    ``{subset: {NAME_ID: (x, y, w, h)}}``.
    """
    rng = np.random.default_rng(seed)
    written: dict[str, dict[str, tuple[int, int, int, int]]] = {}
    for subset, counts in (("test", test_counts), ("train", train_counts or {})):
        rows = ["NAME_ID,X,Y,W,H"]
        written[subset] = {}
        for identity, count in counts.items():
            colour = identity_colour(int(identity[1:]))
            for k in range(1, count + 1):
                width, height = int(rng.integers(70, 110)), int(rng.integers(80, 120))
                w, h = int(rng.integers(30, 45)), int(rng.integers(40, 55))
                x, y = int(rng.integers(5, width - w - 5)), int(rng.integers(5, height - h - 5))
                picture = _noisy_background(width, height, rng, (128, 128, 128))
                ImageDraw.Draw(picture).rectangle([x, y, x + w - 1, y + h - 1], fill=colour)
                name = f"{identity}/{k:04d}_01"
                _save(picture, root / subset / f"{name}.jpg")
                rows.append(f"{name},{x},{y},{w},{h}")
                written[subset][name] = (x, y, w, h)
        if counts:
            path = root / "bb_landmark" / f"loose_bb_{subset}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(rows) + "\n")
    return written


# -- ImageNet ------------------------------------------------------------------------------
def write_imagenet(
    root: Path,
    synsets: list[str],
    train_per_synset: int,
    val_images: int,
    flat_val: bool = True,
    seed: int = 0,
) -> dict:
    """``ROOT/train/<wnid>/<wnid>_<n>.JPEG`` and ``ROOT/val/ILSVRC2012_val_<8 digits>.JPEG``
    (flat, as published)."""
    rng = np.random.default_rng(seed)
    files = {"train": [], "val": []}
    for synset in synsets:
        for n in range(train_per_synset):
            relative = f"train/{synset}/{synset}_{1000 + n}.JPEG"
            picture = _noisy_background(
                int(rng.integers(60, 100)), int(rng.integers(50, 90)), rng, (40, 160, 60)
            )
            _save_jpeg(picture, root / relative)
            files["train"].append(relative)
    for n in range(1, val_images + 1):
        synset = synsets[n % len(synsets)]
        relative = (
            f"val/ILSVRC2012_val_{n:08d}.JPEG"
            if flat_val
            else f"val/{synset}/ILSVRC2012_val_{n:08d}.JPEG"
        )
        picture = _noisy_background(
            int(rng.integers(60, 100)), int(rng.integers(50, 90)), rng, (40, 160, 60)
        )
        _save_jpeg(picture, root / relative)
        files["val"].append(relative)
    return files


def _save_jpeg(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=90)


# -- WIDER FACE ----------------------------------------------------------------------------
WIDER_EVENTS = ("0--Parade", "12--Group")


def write_widerface(root: Path, train_images: int = 6, val_images: int = 4, seed: int = 0) -> dict:
    """``ROOT/wider_face_split/wider_face_{train,val}_bbx_gt.txt`` and
    ``ROOT/WIDER_{train,val}/images/<event>/<file>.jpg``.

    Faces are drawn as face-coloured rectangles. The first picture of each set has a tiny face
    (6 px), the second an invalid-flagged face and a heavily blurred one, the third no face at all
    (the published 0-count + all-zero placeholder syntax). Returns
    ``{set: [(file, [face fields])]}``.
    """
    rng = np.random.default_rng(seed)
    written = {}
    for wider_set, count in (("train", train_images), ("val", val_images)):
        lines, records = [], []
        for k in range(count):
            event = WIDER_EVENTS[k % len(WIDER_EVENTS)]
            label = event.split("--")[1]
            file = f"{event}/{event.split('--')[0]}_{label}_{label.lower()}_{k}_{100 + k}.jpg"
            width, height = int(rng.integers(120, 200)), int(rng.integers(90, 150))
            picture = _noisy_background(width, height, rng)
            faces = []
            n_faces = {1: 3, 2: 0}.get(k, 2)  # picture 2 has no face (WIDER's zero-face line)
            for f in range(n_faces):
                w, h = int(rng.integers(16, 30)), int(rng.integers(18, 34))
                x, y = int(rng.integers(2, width - w - 2)), int(rng.integers(2, height - h - 2))
                flags = [0, 0, 0, 0, 0, 0]
                if k == 0 and f == 0:
                    w, h = 6, 7
                if k == 1 and f == 1:
                    flags[3] = 1  # invalid
                if k == 1 and f == 2:
                    flags[0] = 2  # heavy blur
                    flags[4] = 1  # partial occlusion
                ImageDraw.Draw(picture).rectangle([x, y, x + w - 1, y + h - 1], fill=FACE_RGB)
                faces.append([x, y, w, h, *flags])
            _save(picture, root / f"WIDER_{wider_set}" / "images" / file)
            lines.append(file)
            lines.append(str(len(faces)))
            if faces:
                lines.extend(" ".join(str(v) for v in face) + " " for face in faces)
            else:
                lines.append("0 0 0 0 0 0 0 0 0 0 ")
            records.append((file, faces))
        path = root / "wider_face_split" / f"wider_face_{wider_set}_bbx_gt.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        written[wider_set] = records
    return written


# -- FDDB ----------------------------------------------------------------------------------
def ellipse_polygon(
    a: float, b: float, theta: float, cx: float, cy: float, points: int = 64
) -> list[tuple[float, float]]:
    out = []
    for i in range(points):
        t = 2 * math.pi * i / points
        x, y = a * math.cos(t), b * math.sin(t)
        out.append(
            (
                cx + x * math.cos(theta) - y * math.sin(theta),
                cy + x * math.sin(theta) + y * math.cos(theta),
            )
        )
    return out


def write_fddb(
    root: Path, pictures_per_fold: dict[int, int], seed: int = 0, under_original_pics: bool = True
) -> dict:
    """``ROOT/FDDB-folds/FDDB-fold-XX-ellipseList.txt`` (+ ``FDDB-fold-XX.txt``) and
    ``ROOT/originalPics/2002/08/<dd>/big/img_<n>.jpg`` with the ellipses drawn filled.

    Returns ``{fold: [(name, [(a, b, theta, cx, cy)])]}``; face sizes vary from ~24 to ~110 px.
    """
    rng = np.random.default_rng(seed)
    base = root / "originalPics" if under_original_pics else root
    written = {}
    number = 100
    for fold, count in pictures_per_fold.items():
        ellipse_lines, names, records = [], [], []
        for k in range(count):
            number += 1
            name = f"2002/08/{11 + k % 3:02d}/big/img_{number}"
            width, height = int(rng.integers(200, 320)), int(rng.integers(180, 260))
            picture = _noisy_background(width, height, rng)
            ellipses = []
            n_faces = 1 + k % 2
            for f in range(n_faces):
                a = float(rng.uniform(12, 55)) if f == 0 else float(rng.uniform(30, 50))
                b = a * float(rng.uniform(0.6, 0.85))
                theta = float(rng.uniform(1.2, 1.9))
                cx = float(rng.uniform(a + 2, width - a - 2))
                cy = float(rng.uniform(a + 2, height - a - 2))
                ImageDraw.Draw(picture).polygon(ellipse_polygon(a, b, theta, cx, cy), fill=FACE_RGB)
                ellipses.append((a, b, theta, cx, cy))
            _save(picture, base / f"{name}.jpg")
            names.append(name)
            ellipse_lines.append(name)
            ellipse_lines.append(str(len(ellipses)))
            ellipse_lines.extend(
                f"{a:.6f} {b:.6f} {t:.6f} {x:.6f} {y:.6f}  1" for a, b, t, x, y in ellipses
            )
            records.append((name, ellipses))
        folds = root / "FDDB-folds"
        folds.mkdir(parents=True, exist_ok=True)
        (folds / f"FDDB-fold-{fold:02d}-ellipseList.txt").write_text(
            "\n".join(ellipse_lines) + "\n"
        )
        (folds / f"FDDB-fold-{fold:02d}.txt").write_text("\n".join(names) + "\n")
        written[fold] = records
    return written


# -- COCO ----------------------------------------------------------------------------------
COCO_CATEGORIES = [
    {"supercategory": "person", "id": 1, "name": "person"},
    {"supercategory": "vehicle", "id": 3, "name": "car"},
    {"supercategory": "animal", "id": 18, "name": "dog"},
]
CAPTION_WORDS = (
    "A man riding a wave on top of a surfboard.",
    "A dog sitting next to a parked car.",
    "Two people standing in a kitchen.",
    "A red car parked on the street.",
    "A person holding an umbrella.",
    "A group of people on a beach.",
)


def write_coco(
    root: Path,
    train_ids: list[int],
    val_ids: list[int],
    karpathy_splits: dict[int, str] | None = None,
    seed: int = 0,
) -> dict:
    """``ROOT/{train2014,val2014}/COCO_<set>_<12 digits>.jpg``,
    ``ROOT/annotations/{captions,instances}_{train,val}2014.json`` and (with ``karpathy_splits``:
    coco id → train/val/test/restval) Karpathy's ``ROOT/dataset_coco.json``.

    Each picture gets 5 captions (6 for the first) and 0-2 boxes (drawn filled). Returns
    ``{"captions": {id: [...]}, "boxes": {id: [(bbox, category_id)]}, "sizes": {id: (w, h)}}``.
    """
    rng = np.random.default_rng(seed)
    info = {"description": "COCO 2014 Dataset", "version": "1.0", "year": 2014}
    licenses = [
        {
            "url": "http://creativecommons.org/licenses/by-nc-sa/2.0/",
            "id": 1,
            "name": "Attribution-NonCommercial-ShareAlike License",
        }
    ]
    written = {"captions": {}, "boxes": {}, "sizes": {}, "folder": {}}
    karpathy_images = []
    caption_id, box_id, sentence_id = 1, 1, 1
    for folder, ids in (("train2014", train_ids), ("val2014", val_ids)):
        images, caption_annotations, instance_annotations = [], [], []
        for position, coco_id in enumerate(ids):
            file_name = f"COCO_{folder}_{coco_id:012d}.jpg"
            width, height = int(rng.integers(96, 160)), int(rng.integers(80, 128))
            picture = _noisy_background(width, height, rng)
            boxes = []
            for b in range(position % 3):
                w, h = float(rng.uniform(12, 40)), float(rng.uniform(12, 40))
                x, y = float(rng.uniform(0, width - w)), float(rng.uniform(0, height - h))
                category = COCO_CATEGORIES[b % len(COCO_CATEGORIES)]["id"]
                ImageDraw.Draw(picture).rectangle([x, y, x + w, y + h], fill=FACE_RGB)
                boxes.append(([round(x, 2), round(y, 2), round(w, 2), round(h, 2)], category))
                instance_annotations.append(
                    {
                        "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                        "area": round(w * h, 2),
                        "iscrowd": 0,
                        "image_id": coco_id,
                        "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                        "category_id": category,
                        "id": 900000 + box_id,
                    }
                )
                box_id += 1
            _save(picture, root / folder / file_name)
            images.append(
                {
                    "license": 1,
                    "file_name": file_name,
                    "coco_url": f"http://images.cocodataset.org/{folder}/{file_name}",
                    "height": height,
                    "width": width,
                    "date_captured": "2013-11-14 16:28:13",
                    "flickr_url": "http://farm1.staticflickr.com/1/1_1.jpg",
                    "id": coco_id,
                }
            )
            captions = [
                f"{CAPTION_WORDS[(coco_id + j) % len(CAPTION_WORDS)]} ({coco_id}-{j})"
                for j in range(6 if position == 0 else 5)
            ]
            for text in captions:
                caption_annotations.append(
                    {"image_id": coco_id, "id": 700000 + caption_id, "caption": text + " "}
                )
                caption_id += 1
            written["captions"][coco_id] = captions
            written["boxes"][coco_id] = boxes
            written["sizes"][coco_id] = (width, height)
            written["folder"][coco_id] = folder
            if karpathy_splits is not None and coco_id in karpathy_splits:
                sentences = []
                for text in captions:
                    sentences.append(
                        {
                            "tokens": text.lower().strip(".").split(),
                            "raw": text,
                            "imgid": len(karpathy_images),
                            "sentid": sentence_id,
                        }
                    )
                    sentence_id += 1
                karpathy_images.append(
                    {
                        "filepath": folder,
                        "sentids": [s["sentid"] for s in sentences],
                        "filename": file_name,
                        "imgid": len(karpathy_images),
                        "split": karpathy_splits[coco_id],
                        "sentences": sentences,
                        "cocoid": coco_id,
                    }
                )
        annotations = root / "annotations"
        annotations.mkdir(parents=True, exist_ok=True)
        (annotations / f"captions_{folder}.json").write_text(
            json.dumps(
                {
                    "info": info,
                    "images": images,
                    "licenses": licenses,
                    "annotations": caption_annotations,
                }
            )
        )
        (annotations / f"instances_{folder}.json").write_text(
            json.dumps(
                {
                    "info": info,
                    "images": images,
                    "licenses": licenses,
                    "annotations": instance_annotations,
                    "categories": COCO_CATEGORIES,
                }
            )
        )
    if karpathy_splits is not None:
        (root / "dataset_coco.json").write_text(
            json.dumps({"images": karpathy_images, "dataset": "coco"})
        )
    return written


# -- LFW -----------------------------------------------------------------------------------
def write_lfw(
    root: Path, people: dict[str, int], pairs_sets: int = 2, pairs_per_class: int = 3, seed: int = 0
) -> dict:
    """``ROOT/lfw/<Name>/<Name>_%04d.jpg`` (250x250, a face-coloured square in the centre whose
    colour identifies the person) and ``ROOT/pairs.txt`` (header ``<sets>\\t<n>``, per set n matched
    then n mismatched pairs, tab-separated). Returns ``{"pairs": [(name1, i, name2, j, same)]}``."""
    rng = np.random.default_rng(seed)
    names = list(people)
    for index, (name, count) in enumerate(people.items()):
        colour = identity_colour(index + 1)
        for k in range(1, count + 1):
            picture = _noisy_background(250, 250, rng, (128, 128, 128))
            ImageDraw.Draw(picture).rectangle([75, 75, 174, 174], fill=colour)
            _save(picture, root / "lfw" / name / f"{name}_{k:04d}.jpg")
    lines = [f"{pairs_sets}\t{pairs_per_class}"]
    pairs = []
    for s in range(pairs_sets):
        for p in range(pairs_per_class):
            name = names[(s + p) % len(names)]
            pairs.append((name, 1, name, 2, True))
            lines.append(f"{name}\t1\t2")
        for p in range(pairs_per_class):
            first, second = names[(s + p) % len(names)], names[(s + p + 1) % len(names)]
            pairs.append((first, 1, second, 1, False))
            lines.append(f"{first}\t1\t{second}\t1")
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return {"pairs": pairs}
