"""The ``vggface2`` dataset: VGGFace2 identities with the CAnOPIC protocol (and face vs no-face)."""

from __future__ import annotations

from pathlib import Path

from privbench.api.adapter import FolderAdapter
from privbench.api.errors import DataError
from privbench.api.registry import register_dataset
from privbench.data.adapters.imagenet import FACE_CLASSES, ImageNetAdapter
from privbench.data.adapters.vggface2_protocol import (
    DATASET,
    Face,
    VGGFace2Config,
    VGGFace2Selection,
    count_images,
    crop_request,
    loose_bb_path,
    require_face_files,
    sample_extra_faces,
    select_vggface2,
)
from privbench.data.containers import SPLITS, BenchmarkData, LabeledImages, LabeledSplits
from privbench.data.formats import (
    CheckReport,
    concat_labeled,
    fingerprinted,
    load_labeled_split,
    split_sizes,
)

LAYOUT = """\
ROOT/train/n000002/0001_01.jpg          identity folders of the training set (8,631 identities)
ROOT/test/n000001/0001_01.jpg           identity folders of the test set (500 identities)
ROOT/bb_landmark/loose_bb_train.csv     NAME_ID,X,Y,W,H   e.g.  n000002/0001_01,161,140,224,324
ROOT/bb_landmark/loose_bb_test.csv
"""


@register_dataset(DATASET)
class VGGFace2Adapter(FolderAdapter):
    """VGGFace2 identities with the CAnOPIC protocol (and, with ImageNet, face vs no-face).

    The layout is that of the published VGGFace2 archives, extracted.

    Protocol (CAnOPIC §4, experiment 1): the ``n_identities`` (100) identities of ``subset`` with
    the most images (VGGFace2's held-out ``test`` set by default, the paper's "validation set",
    disjoint from any identity used to design the encoder; ties broken by identity name); per
    identity ``test_per_identity`` (30) images go to test, ``val_per_identity`` (30) to
    validation, the rest (at most ``max_train_per_identity``) to training, in a seeded hash order
    of the file names.

    Crops: the loose bounding box of ``loose_bb_<subset>.csv``. ``crop: loose-square`` (default)
    takes the square of side ``crop_scale · max(W, H)`` centred on the box (zeros where it leaves
    the picture), so faces keep their aspect; ``loose`` stretches the box itself; ``full`` uses the
    whole picture (no CSV needed). Crops are resized to ``image_size`` (64). In a 64-pixel loose
    crop the face spans roughly 40 pixels, the size CAnOPIC reports.

    Face vs no-face (experiment 2): with ``nonfaces`` (an
    :class:`~privbench.data.adapters.imagenet.ImageNetAdapter` config, at least its ``path``) the
    dataset also has the ``face_vs_noface`` part: faces labelled 1 and ImageNet no-face crops
    labelled 0 per split. Face crops of val/test are the identity val/test crops (as in the paper,
    whose face test set is the ID test set); training faces are the identity training crops, or with
    ``face_vs_noface_train_faces: K`` K loose crops drawn from the other VGGFace2 subset (the paper
    used 100,000 VGGFace2 training images), never from the selected identities.
    """

    Config = VGGFace2Config
    layout = LAYOUT
    config: VGGFace2Config

    def _crops(
        self,
        subset: str,
        faces: list[Face],
        labels: list[int],
        classes: list[str],
        namespace: str,
        cache_dir,
    ) -> tuple[LabeledImages, str]:
        config = self.config
        require_face_files(config, subset, faces)
        return load_labeled_split(
            [crop_request(config.root, subset, f, config) for f in faces],
            labels,
            classes,
            size=config.image_size,
            mode="stretch",
            workers=config.workers,
            cache_dir=self.cache_root(cache_dir),
            max_pixels=config.max_image_pixels,
            namespace=namespace,
        )

    def identities(
        self, cache_dir: str | Path | None = None
    ) -> tuple[LabeledSplits, dict[str, str], VGGFace2Selection]:
        """The identity crops of the CAnOPIC protocol, the pixel digest of each split and the
        selection."""
        config = self.config
        selection = select_vggface2(config)
        label_of = {identity: i for i, identity in enumerate(selection.identities)}
        parts, digests = {}, {}
        for split in SPLITS:
            faces = selection.splits[split]
            parts[split], digests[split] = self._crops(
                config.subset,
                faces,
                [label_of[f.identity] for f in faces],
                list(selection.identities),
                f"{DATASET}-{split}",
                cache_dir,
            )
        return LabeledSplits(**parts), digests, selection

    def face_vs_noface(
        self,
        identities: LabeledSplits,
        digests: dict[str, str],
        selection: VGGFace2Selection,
        cache_dir,
    ) -> tuple[LabeledSplits, dict[str, str]]:
        """Faces (label 1) joined with the ImageNet no-face crops (label 0) of every split."""
        config = self.config
        nonfaces, nonface_digests = self.imagenet().nonfaces(cache_dir)
        faces: dict[str, LabeledImages] = {split: identities[split] for split in SPLITS}
        face_digests = dict(digests)
        if config.face_vs_noface_train_faces is not None:
            exclude = set(selection.identities)
            subset, extra = sample_extra_faces(config, config.face_vs_noface_train_faces, exclude)
            faces["train"], face_digests["train"] = self._crops(
                subset, extra, [0] * len(extra), ["face"], f"{DATASET}-faces-train", cache_dir
            )
        parts, combined = {}, {}
        for split in SPLITS:
            parts[split] = concat_labeled(
                [faces[split], nonfaces[split]], [1, 0], list(FACE_CLASSES)
            )
            combined[split] = f"{face_digests[split]}+{nonface_digests[split]}"
        return LabeledSplits(**parts), combined

    def imagenet(self) -> ImageNetAdapter:
        """The ImageNet adapter of the no-face class (``nonfaces``), at this image size."""
        config = self.config
        options = {**config.nonfaces}
        if options.setdefault("image_size", config.image_size) != config.image_size:
            raise DataError(
                f"vggface2: nonfaces.image_size ({options['image_size']}) must equal image_size "
                f"({config.image_size})."
            )
        options.setdefault("workers", config.workers)
        options.setdefault("cache", config.cache)
        return ImageNetAdapter.from_options(options)

    def load(self, cache_dir: str | Path | None = None) -> BenchmarkData:
        """VGGFace2 identity crops, CAnOPIC protocol (with ``nonfaces``: also face vs no-face
        against ImageNet)."""
        config = self.config
        identities, digests, selection = self.identities(cache_dir)
        parts = {"identities": (identities, digests)}
        description = (
            f"VGGFace2 {config.subset}: the {config.n_identities} identities with most images, "
            f"{split_sizes(identities)} crops (train/val/test; {config.test_per_identity} test "
            f"and {config.val_per_identity} val per identity), {config.crop} crops resized to "
            f"{config.image_size}x{config.image_size}"
        )
        if config.nonfaces is not None:
            binary = self.face_vs_noface(identities, digests, selection, cache_dir)
            parts["face_vs_noface"] = binary
            counts = "/".join(
                f"{int(part.labels.sum())}+{int((part.labels == 0).sum())}"
                for _, part in binary[0].items()
            )
            description += f"; face vs no-face: {counts} faces+ImageNet no-faces (train/val/test)"
        return fingerprinted(DATASET, description + ".", **parts)

    def check(self) -> CheckReport:
        """Counts per subset, the protocol's split sizes, and any selected image missing on
        disk."""
        config = self.config
        report = self.report()
        for subset in ("train", "test"):
            report.add_found(subset, f"bb_landmark/loose_bb_{subset}.csv")
        for subset in ("train", "test"):
            if config.crop != "full" and not loose_bb_path(config.root, subset).is_file():
                if subset == config.subset:
                    raise DataError(
                        f"VGGFace2: {str(loose_bb_path(config.root, subset))!r} is missing; the "
                        f"CAnOPIC crops need the loose bounding boxes (bb_landmark/loose_bb_"
                        f"{subset}.csv, header NAME_ID,X,Y,W,H). Use crop=full to read whole "
                        f"pictures."
                    )
                continue
            if config.crop == "full" and not (config.root / subset).is_dir():
                continue
            counts = count_images(config, subset)
            report.counts[f"{subset}/ (all)"] = {
                "images": sum(counts.values()),
                "identities": len(counts),
            }
        selection = select_vggface2(config)
        for split in SPLITS:
            faces = selection.splits[split]
            identities = len({f.identity for f in faces})
            report.counts[split] = {"images": len(faces), "identities": identities}
        paths = [
            config.root / config.subset / f"{f.name}.jpg"
            for split in SPLITS
            for f in selection.splits[split]
        ]
        if config.face_vs_noface_train_faces is not None:
            exclude = set(selection.identities)
            subset, extra = sample_extra_faces(config, config.face_vs_noface_train_faces, exclude)
            report.counts["face-class train"] = {"images": len(extra)}
            paths += [config.root / subset / f"{f.name}.jpg" for f in extra]
        report.check_files(paths)
        if config.nonfaces is not None:
            nonfaces = ImageNetAdapter.from_options(
                {"image_size": config.image_size, **config.nonfaces}
            ).check()
            report.notes.append(
                "nonfaces (ImageNet):\n  " + nonfaces.render().replace("\n", "\n  ")
            )
            report.checked_files += nonfaces.checked_files
            report.missing.extend(str(nonfaces.root / m) for m in nonfaces.missing)
        return report
