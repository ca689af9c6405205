"""Caption words: tokenization, the vocabulary and the padded index rows the decoder reads.

The vocabulary holds the words of the training captions seen at least ``min_count`` times,
after ``<pad> <start> <end> <unk>``; every reference caption becomes one row
``<start> w_1 … w_C <end> <pad> …`` tied to the image it describes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from privbench.api.errors import ConfigError, DataError

SPECIAL_TOKENS = ("<pad>", "<start>", "<end>", "<unk>")
PAD, START, END, UNK = range(len(SPECIAL_TOKENS))
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


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
    def build(cls, captions: Iterable[str], min_count: int) -> Vocabulary:
        """Words seen at least ``min_count`` times in ``captions`` (most frequent first, ties
        alphabetical); rarer words will read as ``<unk>``."""
        if int(min_count) < 1:
            raise ConfigError(f"min_count must be at least 1; got {min_count}.")
        counts = Counter(word for text in captions for word in tokenize(text))
        kept = sorted(
            (w for w, n in counts.items() if n >= min_count and w not in SPECIAL_TOKENS),
            key=lambda w: (-counts[w], w),
        )
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
        counts = torch.bincount(
            self.image_index,
            minlength=int(self.image_index.max()) + 1 if len(self.image_index) else 0,
        )
        self._rows = list(order.split(counts.tolist()))


def encode_captions(
    vocabulary: Vocabulary, captions: Sequence[Sequence[str]], max_words: int
) -> EncodedCaptions:
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


def longest_caption(captions: Iterable[Iterable[str]]) -> int:
    """The number of words of the longest caption."""
    return max((len(tokenize(text)) for texts in captions for text in texts), default=0)
