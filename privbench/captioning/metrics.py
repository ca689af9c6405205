"""Caption metrics of the COCO caption evaluation server, through ``pycocoevalcap``.

Candidates and references are first tokenized by pycocoevalcap's Stanford PTB tokenizer (Java:
lower-cased, punctuation removed), exactly as the COCO server does, then scored with:

- BLEU-1..4 (Papineni et al. 2002): corpus-level modified n-gram precisions, geometric mean,
  brevity penalty against the closest reference length;
- METEOR 1.5 (Denkowski & Lavie 2014; Java): unigram alignment with stems, synonyms and
  paraphrases, F-mean with a fragmentation penalty;
- ROUGE-L (Lin 2004): longest-common-subsequence F-measure (β = 1.2) per image, averaged;
- CIDEr-D (Vedantam et al. 2015): TF-IDF weighted n-gram (1..4) cosine similarity with a
  Gaussian length penalty (σ = 6), IDF taken from the references of the scored set;
- SPICE (Anderson et al. 2016; Java), only when the Stanford CoreNLP 3.6.0 jars it needs are
  already in pycocoevalcap's ``spice/lib`` folder: pycocoevalcap would download them, privbench
  never downloads, so otherwise SPICE is skipped with a one-line reason.

Every score is reported on the 0–100 scale the captioning papers print (the raw value × 100;
CIDEr-D, whose raw range is [0, 10], is therefore on [0, 1000] like the published 100-ish
values).
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from privbench.api.errors import ConfigError, DataError, PrivbenchError
from privbench.api.profiling import section

METRIC_NAMES = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider", "spice")
SCORERS = ("bleu", "meteor", "rouge", "cider", "spice")
SPICE_CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


class CaptionMetricError(PrivbenchError):
    """A caption metric could not run (Java missing, a scorer failed)."""


@dataclass
class CaptionScores:
    """Corpus-level scores (0–100 scale) and the metrics skipped, with why."""

    metrics: dict[str, float]
    skipped: dict[str, str] = field(default_factory=dict)
    per_image: dict[str, list[float]] = field(default_factory=dict)


#: Why captioning cannot run without Java, and how to install it.
JAVA_MISSING = (
    "a Java runtime on PATH: caption metrics run pycocoevalcap's PTB tokenizer and METEOR, Java "
    "programs (Debian/Ubuntu: apt-get install openjdk-17-jre-headless, about 200 MB; macOS: "
    "brew install openjdk)"
)


def java_missing() -> str | None:
    """:data:`JAVA_MISSING` when no ``java`` is on PATH, else None."""
    return None if shutil.which("java") else JAVA_MISSING


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise CaptionMetricError(f"Caption metrics need {JAVA_MISSING}.")
    return java


def spice_models_folder() -> Path:
    """Where pycocoevalcap's SPICE looks for the Stanford CoreNLP jars."""
    import pycocoevalcap.spice.spice as spice_module

    return Path(spice_module.__file__).resolve().parent / "lib"


def spice_unavailable_reason() -> str | None:
    """``None`` when SPICE can run offline, else the one-line reason it is skipped."""
    folder = spice_models_folder()
    missing = [name for name in SPICE_CORENLP_JARS if not (folder / name).is_file()]
    if missing:
        return (
            f"SPICE skipped: its Stanford CoreNLP models ({', '.join(missing)}) are not in "
            f"{folder}, and privbench never downloads them (copy them there to enable SPICE)."
        )
    return None


def _check_inputs(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(candidates) != len(references):
        raise DataError(
            "Caption scoring needs one candidate per image and one list of references per image; "
            f"got {len(candidates)} candidates and {len(references)} reference lists."
        )
    if not candidates:
        raise DataError("Caption scoring needs at least one image; got none.")
    for index, (candidate, refs) in enumerate(zip(candidates, references)):
        if not isinstance(candidate, str):
            raise DataError(
                f"Candidate caption {index} must be a string; got {type(candidate).__name__}."
            )
        if isinstance(refs, str) or not refs or not all(isinstance(r, str) for r in refs):
            raise DataError(
                f"Image {index} needs a non-empty list of reference caption strings; got {refs!r}."
            )


@section("java")
def ptb_tokenize(captions: Mapping[int, Sequence[str]]) -> dict[int, list[str]]:
    """pycocoevalcap's PTB tokenization of ``{image: [caption, ...]}`` (lower
    case, no punctuation)."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    _java()
    payload = {
        key: [{"caption": " ".join(text.split())} for text in texts]
        for key, texts in captions.items()
    }
    try:
        tokenized = PTBTokenizer().tokenize(payload)
    except (OSError, subprocess.SubprocessError) as error:
        raise CaptionMetricError(f"pycocoevalcap's PTB tokenizer failed: {error}") from error
    # The tokenizer returns nothing for an image whose captions are all empty lines at the end.
    return {key: tokenized.get(key, [""] * len(texts)) for key, texts in captions.items()}


class _MeteorServer:
    """One METEOR 1.5 Java process per Python process, started on first use and reused by every
    later scoring call (its JVM start-up and paraphrase tables take seconds; a run scores many
    captioners). METEOR's ``-stdio`` protocol is stateless between calls (each ``EVAL`` line
    carries all its segment statistics), so a reused process returns the numbers of a fresh one.
    A process that died is replaced once; the process is closed at interpreter exit."""

    def __init__(self) -> None:
        self._scorer = None
        self._lock = threading.Lock()

    def score(
        self, references: dict[int, list[str]], candidates: dict[int, list[str]]
    ) -> tuple[float, list[float]]:
        with self._lock:
            for attempt in (0, 1):
                scorer = self._started()
                try:
                    score, scores = scorer.compute_score(references, candidates)
                    return float(score), [float(s) for s in scores]
                except (OSError, ValueError):
                    self._close_locked()
                    if attempt:
                        raise
        raise AssertionError("unreachable")

    def _started(self):
        if self._scorer is None or self._scorer.meteor_p.poll() is not None:
            from pycocoevalcap.meteor.meteor import Meteor

            with section("java"):
                self._scorer = Meteor()
        return self._scorer

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        scorer, self._scorer = self._scorer, None
        if scorer is None:
            return
        process = scorer.meteor_p
        try:
            process.stdin.close()
        except OSError:
            pass
        process.kill()
        process.wait()
        # The wrapper's __del__ closes the same process again under its lock (left held by a
        # call that failed midway): make that a no-op on a fresh lock.
        scorer.meteor_p = _ClosedProcess()
        scorer.lock = threading.Lock()


_METEOR = _MeteorServer()
atexit.register(_METEOR.close)


@section("java")
def _meteor(
    references: dict[int, list[str]], candidates: dict[int, list[str]]
) -> tuple[float, list[float]]:
    """METEOR 1.5 through pycocoevalcap's wrapper, on this process's one METEOR server."""
    return _METEOR.score(references, candidates)


class _ClosedProcess:
    """Stands in for METEOR's finished Java process so the wrapper's destructor does nothing."""

    class _Stream:
        def close(self) -> None:
            """Nothing to close: the real stream was closed with its process."""

    stdin = _Stream()

    def kill(self) -> None:
        """Nothing to kill: the process was killed and reaped by `_close_locked`."""

    def wait(self) -> None:
        """Nothing to wait for: the process has already exited."""

    def poll(self) -> int:
        return 0


def score_captions(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    scorers: Iterable[str] = SCORERS,
) -> CaptionScores:
    """Score one candidate caption per image against that image's references (0–100 scale).

    ``scorers``: any of ``bleu`` (BLEU-1..4), ``meteor``, ``rouge`` (ROUGE-L), ``cider``
    (CIDEr-D), ``spice``. Raw strings go in; the PTB tokenizer normalizes both sides.
    """
    return score_caption_sets([candidates], references, [scorers])[0]


@section("metrics")
def score_caption_sets(
    candidate_sets: Sequence[Sequence[str]],
    references: Sequence[Sequence[str]],
    scorers: Sequence[Iterable[str]],
) -> list[CaptionScores]:
    """:func:`score_captions` for several captioners of the same images (e.g. a model and a
    baseline), tokenizing the references once and all candidates in one call."""
    if len(scorers) != len(candidate_sets):
        raise ConfigError(
            "Give one list of scorers per candidate set; got "
            f"{len(scorers)} for {len(candidate_sets)} sets."
        )
    chosen_sets = []
    for chosen in scorers:
        chosen = list(dict.fromkeys(chosen))
        unknown = [name for name in chosen if name not in SCORERS]
        if unknown:
            raise ConfigError(
                f"Unknown caption scorer(s) {unknown}; accepted: {', '.join(SCORERS)}."
            )
        chosen_sets.append(chosen)
    for candidates in candidate_sets:
        _check_inputs(candidates, references)
    count = len(references)
    # One tokenizer process for references and every candidate set (a Java start-up each).
    tokenized = ptb_tokenize(
        {
            **{i: list(refs) for i, refs in enumerate(references)},
            **{
                (s + 1) * count + i: [c]
                for s, candidates in enumerate(candidate_sets)
                for i, c in enumerate(candidates)
            },
        }
    )
    tokenized_refs = {i: tokenized[i] for i in range(count)}
    return [
        score_tokenized(
            {i: tokenized[(s + 1) * count + i] for i in range(count)}, tokenized_refs, chosen
        )
        for s, chosen in enumerate(chosen_sets)
    ]


def score_tokenized(
    candidates: dict[int, list[str]], references: dict[int, list[str]], scorers: Sequence[str]
) -> CaptionScores:
    """The scorers on already tokenized ``{image: [candidate]}`` / ``{image: [reference, ...]}``."""
    result = CaptionScores(metrics={})
    if "bleu" in scorers:
        from pycocoevalcap.bleu.bleu import Bleu

        bleu, per_image = Bleu(4).compute_score(references, candidates, verbose=0)
        for n in range(4):
            result.metrics[f"bleu_{n + 1}"] = 100.0 * float(bleu[n])
            result.per_image[f"bleu_{n + 1}"] = [100.0 * float(v) for v in per_image[n]]
    if "meteor" in scorers:
        _java()
        try:
            meteor, per_image = _meteor(references, candidates)
        except (OSError, ValueError, subprocess.SubprocessError) as error:
            raise CaptionMetricError(f"METEOR (pycocoevalcap, Java) failed: {error}") from error
        result.metrics["meteor"] = 100.0 * meteor
        result.per_image["meteor"] = [100.0 * v for v in per_image]
    if "rouge" in scorers:
        from pycocoevalcap.rouge.rouge import Rouge

        rouge, per_image = Rouge().compute_score(references, candidates)
        result.metrics["rouge_l"] = 100.0 * float(rouge)
        result.per_image["rouge_l"] = [100.0 * float(v) for v in per_image]
    if "cider" in scorers:
        from pycocoevalcap.cider.cider import Cider

        cider, per_image = Cider().compute_score(references, candidates)
        result.metrics["cider"] = 100.0 * float(cider)
        result.per_image["cider"] = [100.0 * float(v) for v in per_image]
    if "spice" in scorers:
        reason = spice_unavailable_reason()
        if reason is None:
            reason = _spice(references, candidates, result)
        if reason is not None:
            result.skipped["spice"] = reason
    return result


def validation_scores(
    candidates: Sequence[str], references: Sequence[Sequence[str]]
) -> dict[str, float]:
    """BLEU-4 and CIDEr-D (0–100 scale) of already normalized captions, without the Java
    tokenizer: the captioner's per-epoch validation scores (the test split goes through the
    full pipeline of :func:`score_captions`)."""
    scores = score_tokenized(
        {i: [c] for i, c in enumerate(candidates)},
        {i: list(refs) for i, refs in enumerate(references)},
        ["bleu", "cider"],
    )
    return {"bleu_4": scores.metrics["bleu_4"], "cider": scores.metrics["cider"]}


def _spice(
    references: dict[int, list[str]], candidates: dict[int, list[str]], result: CaptionScores
) -> str | None:
    """Run SPICE (models present locally); returns a skip reason if the Java scorer fails."""
    from pycocoevalcap.spice.spice import Spice

    try:
        spice, per_image = Spice().compute_score(references, candidates)
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as error:
        return f"SPICE skipped: its Java scorer failed ({type(error).__name__}: {error})."
    result.metrics["spice"] = 100.0 * float(spice)
    result.per_image["spice"] = [100.0 * float(s["All"]["f"]) for s in per_image]
    return None


def most_frequent_caption(captions: Iterable[Iterable[str]], normalize) -> str:
    """The most frequent caption of a corpus after ``normalize`` (ties: the alphabetically first).

    The trivial captioner that writes this one caption for every image is the chance level of
    the captioning task.
    """
    counts: dict[str, int] = {}
    for texts in captions:
        for text in texts:
            key = normalize(text)
            if key:
                counts[key] = counts.get(key, 0) + 1
    if not counts:
        raise DataError("Cannot pick a most frequent caption: the training captions are all empty.")
    return min(counts, key=lambda key: (-counts[key], key))


__all__ = [
    "METRIC_NAMES",
    "CaptionMetricError",
    "CaptionScores",
    "most_frequent_caption",
    "ptb_tokenize",
    "score_caption_sets",
    "score_captions",
    "score_tokenized",
    "spice_models_folder",
    "spice_unavailable_reason",
]
