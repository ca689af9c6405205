"""Captioning: metric values pinned against independent implementations, the 2PSC loss terms on
hand-made tensors, decoding, vocabulary, training, and the task end to end on synthfaces scenes."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from privbench.api.errors import ConfigError, InputError
from privbench.captioning import (
    END,
    PAD,
    SPECIAL_TOKENS,
    START,
    UNK,
    CaptionModelConfig,
    Vocabulary,
    beam_search,
    build_caption_model,
    build_feature_extractor,
    caption_loss,
    doubly_stochastic_penalty,
    encode_captions,
    greedy_decode,
    normalize_caption,
    resnet101_trunk,
    step_mask,
)
from privbench.captioning.metrics import (
    most_frequent_caption,
    ptb_tokenize,
    score_captions,
    spice_unavailable_reason,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: per-operation overhead dominates, and on a loaded 2-core machine a
    second thread makes them several times slower, so this module runs single-threaded."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# -- metrics -----------------------------------------------------------------------------------
# Lower-case words without punctuation, so the PTB tokenizer leaves them as they are.
CANDIDATES = [
    "a man is riding a horse on the beach",
    "two dogs play in the park",
    "a red car parked near a tree",
]
REFERENCES = [
    [
        "a man rides a horse on the beach",
        "a person riding a brown horse along the sea",
        "a man on a horse at the beach",
    ],
    [
        "two dogs are playing in a park",
        "dogs running on the grass",
        "two brown dogs play together in the park",
    ],
    [
        "a red car is parked next to a tree",
        "a small red car near a big tree",
        "a car parked by a tree",
    ],
]


def ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def independent_bleu(
    candidates: list[str], references: list[list[str]], max_n: int = 4
) -> list[float]:
    """Corpus BLEU (Papineni et al. 2002): clipped n-gram precisions pooled over the corpus,
    geometric mean of orders 1..n, brevity penalty with the reference length closest to each
    candidate (ties: the shorter)."""
    matches, totals = [0] * max_n, [0] * max_n
    candidate_length = reference_length = 0
    for candidate, refs in zip(candidates, references):
        words = candidate.split()
        ref_words = [r.split() for r in refs]
        candidate_length += len(words)
        reference_length += min((abs(len(r) - len(words)), len(r)) for r in ref_words)[1]
        for n in range(1, max_n + 1):
            counts = ngrams(words, n)
            max_ref = Counter()
            for r in ref_words:
                max_ref |= ngrams(r, n)
            matches[n - 1] += sum(min(c, max_ref[g]) for g, c in counts.items())
            totals[n - 1] += sum(counts.values())
    brevity = (
        1.0
        if candidate_length >= reference_length
        else math.exp(1 - reference_length / candidate_length)
    )
    scores = []
    for n in range(1, max_n + 1):
        log_mean = sum(math.log(matches[k] / totals[k]) for k in range(n)) / n
        scores.append(100.0 * brevity * math.exp(log_mean))
    return scores


def lcs(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
            )
    return table[-1][-1]


def independent_rouge_l(
    candidates: list[str], references: list[list[str]], beta: float = 1.2
) -> float:
    """ROUGE-L (Lin 2004) as the COCO server defines it: per image the best LCS precision and the
    best LCS recall over the references, F_β with β = 1.2, averaged over images."""
    total = 0.0
    for candidate, refs in zip(candidates, references):
        c = candidate.split()
        precision = max(lcs(r.split(), c) / len(c) for r in refs)
        recall = max(lcs(r.split(), c) / len(r.split()) for r in refs)
        total += (
            (1 + beta**2) * precision * recall / (recall + beta**2 * precision)
            if precision and recall
            else 0.0
        )
    return 100.0 * total / len(candidates)


def independent_cider_d(
    candidates: list[str], references: list[list[str]], sigma: float = 6.0
) -> float:
    """CIDEr-D (Vedantam et al. 2015): for n = 1..4, TF-IDF n-gram vectors (IDF = log of the number
    of images over the number of images whose references contain the n-gram), the candidate's
    vector clipped by each reference's, cosine-normalized, times a Gaussian length penalty; mean
    over n and over references, × 10; mean over images."""
    images = len(references)
    document_frequency = Counter()
    for refs in references:
        seen = set()
        for r in refs:
            for n in range(1, 5):
                seen |= set(ngrams(r.split(), n))
        document_frequency.update(seen)

    def vectors(words: list[str]) -> list[dict]:
        return [
            {
                g: c * (math.log(images) - math.log(max(1.0, document_frequency[g])))
                for g, c in ngrams(words, n).items()
            }
            for n in range(1, 5)
        ]

    total = 0.0
    for candidate, refs in zip(candidates, references):
        c_words = candidate.split()
        c_vectors = vectors(c_words)
        per_reference = []
        for r in refs:
            r_words = r.split()
            r_vectors = vectors(r_words)
            penalty = math.exp(-((len(c_words) - len(r_words)) ** 2) / (2 * sigma**2))
            similarities = []
            for cv, rv in zip(c_vectors, r_vectors):
                norm_c = math.sqrt(sum(v * v for v in cv.values()))
                norm_r = math.sqrt(sum(v * v for v in rv.values()))
                dot = sum(min(v, rv.get(g, 0.0)) * rv.get(g, 0.0) for g, v in cv.items())
                similarities.append(penalty * dot / (norm_c * norm_r) if norm_c and norm_r else 0.0)
            per_reference.append(sum(similarities) / 4)
        total += 10.0 * sum(per_reference) / len(refs)
    return 100.0 * total / images


# Three more images to order METEOR by: an exact reference, a paraphrase, an unrelated caption.
METEOR_CANDIDATES = [
    "a man rides a horse on the beach",
    "a man riding a horse at the beach",
    "two cups on a table",
]
METEOR_REFERENCES = [["a man rides a horse on the beach"]] * 3


@pytest.fixture(scope="module")
def pinned():
    """One scoring run (METEOR's Java start-up is the slow part) of the six images."""
    candidates, references = CANDIDATES + METEOR_CANDIDATES, REFERENCES + METEOR_REFERENCES
    return candidates, references, score_captions(candidates, references)


def test_bleu_rouge_cider_match_independent_implementations(pinned):
    candidates, references, scores = pinned
    expected_bleu = independent_bleu(candidates, references)
    for n, value in enumerate(expected_bleu, start=1):
        assert scores.metrics[f"bleu_{n}"] == pytest.approx(value, rel=1e-6), f"BLEU-{n}"
    assert scores.metrics["rouge_l"] == pytest.approx(
        independent_rouge_l(candidates, references), rel=1e-9
    )
    assert scores.metrics["cider"] == pytest.approx(
        independent_cider_d(candidates, references), rel=1e-6
    )
    # BLEU-1 by hand: 43 candidate words, 37 of them in the references (all but is; riding, at;
    # two, cups, table); the closest references have 9 + 5 + 6 + 8 + 8 + 8 = 44 words (ties go
    # to the shorter), so the brevity penalty is exp(1 − 44/43).
    assert scores.metrics["bleu_1"] == pytest.approx(
        100 * 37 / 43 * math.exp(1 - 44 / 43), rel=1e-6
    )
    assert (
        0
        < scores.metrics["bleu_4"]
        < scores.metrics["bleu_3"]
        < scores.metrics["bleu_2"]
        < scores.metrics["bleu_1"]
    )


def test_meteor_orders_candidates_and_spice_is_skipped_with_a_reason(pinned):
    # METEOR has no short independent definition (stems, WordNet synonyms, paraphrase tables), so
    # its scorer is checked for range and order: an exact reference > a paraphrase > unrelated.
    _, _, scores = pinned
    assert 0 < scores.metrics["meteor"] < 100
    exact, paraphrase, unrelated = scores.per_image["meteor"][-3:]
    assert exact > paraphrase > unrelated
    reason = spice_unavailable_reason()
    if reason is not None:
        assert scores.skipped["spice"] == reason and "spice" not in scores.metrics
        assert "\n" not in reason


def test_one_meteor_process_serves_every_call_with_a_fresh_processs_numbers(pinned):
    # One Java process per Python process (its start-up is seconds per captioning cell): a
    # reused one must give exactly the numbers of a process that never scored anything before.
    from pycocoevalcap.meteor.meteor import Meteor

    from privbench.captioning import metrics as caption_metrics

    candidates, references, first = pinned
    server = caption_metrics._METEOR
    pid = server._started().meteor_p.pid
    again = score_captions(candidates, references, ["meteor"])
    assert server._started().meteor_p.pid == pid  # not restarted
    tokenized_refs = ptb_tokenize({i: list(r) for i, r in enumerate(references)})
    tokenized_cands = ptb_tokenize({i: [c] for i, c in enumerate(candidates)})
    fresh = Meteor()
    try:
        score, per_image = fresh.compute_score(tokenized_refs, tokenized_cands)
    finally:
        fresh.meteor_p.kill()
        fresh.meteor_p.wait()
        fresh.meteor_p = caption_metrics._ClosedProcess()
    assert again.metrics["meteor"] == first.metrics["meteor"] == pytest.approx(100 * score, abs=0)
    assert again.per_image["meteor"] == [100 * v for v in per_image]
    # A server whose process died (killed, out of memory) starts a new one and still scores.
    process = server._started().meteor_p
    process.kill()
    process.wait()
    revived = score_captions(candidates, references, ["meteor"])
    assert revived.metrics["meteor"] == first.metrics["meteor"]
    assert server._started().meteor_p.pid != pid


def test_ptb_tokenizer_normalizes_case_and_punctuation():
    plain = score_captions(
        ["a man rides a horse"], [["a man is riding a horse on the beach"]], ["bleu"]
    )
    noisy = score_captions(
        ["A man rides a horse."], [["A man is riding a horse, on the beach!"]], ["bleu"]
    )
    assert noisy.metrics == pytest.approx(plain.metrics)


def test_most_frequent_caption_counts_normalized_captions():
    captions = [["Two dogs.", "A cat"], ["two dogs", "a cat."], ["TWO DOGS!"]]
    assert most_frequent_caption(captions, normalize_caption) == "two dogs"
    # ties go to the alphabetically first caption
    assert most_frequent_caption([["b b"], ["a a"]], normalize_caption) == "a a"


# -- the loss ----------------------------------------------------------------------------------
def test_doubly_stochastic_penalty_on_a_hand_made_attention_tensor():
    theta = torch.tensor([[[0.5, 0.5], [0.9, 0.1], [0.3, 0.7]]])  # (B=1, T=3, L=2)
    all_steps = doubly_stochastic_penalty(theta, torch.ones(1, 3))
    # Σ_t θ_t = (1.7, 1.3): (1 − 1.7)² + (1 − 1.3)² = 0.49 + 0.09
    assert all_steps.item() == pytest.approx(0.58)
    # a caption of two steps ignores the third: (1.4, 0.6) → 0.16 + 0.16
    two_steps = doubly_stochastic_penalty(theta, step_mask(torch.tensor([2]), 3))
    assert two_steps.item() == pytest.approx(0.32)


def test_caption_loss_is_summed_nll_plus_lambda_penalty():
    vocab = 7
    tokens = torch.tensor([[START, 4, 5, END, PAD], [START, 6, END, PAD, PAD]])
    steps = torch.tensor([3, 2])
    logits = torch.zeros(2, 3, vocab)  # uniform: every word costs log K
    theta = torch.full((2, 3, 4), 0.25)
    loss, parts = caption_loss(logits, tokens, steps, theta, regularization=2.0)
    # caption 0: 3 steps, Σ_t θ = 0.75 per location → 4 · 0.25² = 0.25
    # caption 1: 2 steps, Σ_t θ = 0.5 per location → 4 · 0.5² = 1.0
    expected = ((3 * math.log(vocab) + 2.0 * 0.25) + (2 * math.log(vocab) + 2.0 * 1.0)) / 2
    assert loss.item() == pytest.approx(expected)
    assert parts["nll_per_word"] == pytest.approx(math.log(vocab))


# -- vocabulary --------------------------------------------------------------------------------
def test_vocabulary_threshold_specials_and_round_trip():
    captions = ["A red ball.", "a red box", "A blue ball", "a ball!"]
    vocab = Vocabulary.build(captions, min_count=2)
    assert tuple(vocab.words[:4]) == SPECIAL_TOKENS == ("<pad>", "<start>", "<end>", "<unk>")
    # by count (4, 3, 2); 'box' and 'blue' appear once
    assert vocab.words[4:] == ["a", "ball", "red"]
    assert vocab.encode("a blue ball", max_words=10) == [
        START,
        vocab.index("a"),
        UNK,
        vocab.index("ball"),
        END,
    ]
    assert vocab.encode("a red ball a red ball", max_words=2) == [
        START,
        vocab.index("a"),
        vocab.index("red"),
        END,
    ]
    assert (
        vocab.decode([START, vocab.index("red"), vocab.index("ball"), END, vocab.index("a")])
        == "red ball"
    )
    assert len(Vocabulary.build(captions, min_count=1)) == 4 + 5
    with pytest.raises(ConfigError, match="min_count"):
        Vocabulary.build(captions, min_count=0)


def test_encoded_captions_group_rows_by_image():
    vocab = Vocabulary.build(["a b", "a b c"], min_count=1)
    encoded = encode_captions(vocab, [["a b", "a b c"], ["b"]], max_words=5)
    assert encoded.steps.tolist() == [3, 4, 2]
    assert encoded.image_index.tolist() == [0, 0, 1]
    assert encoded.rows_of_images(torch.tensor([1, 0])).tolist() == [2, 0, 1]
    assert encoded.tokens[2].tolist() == [START, vocab.index("b"), END, PAD, PAD]


# -- feature extractor -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, grid",
    # 128 px scene: all five points stride (128 → 4); low-res 16×16: two (16 → 4);
    # 12-channel 12×12 measurement: one (12 → 6, a second would leave 3 < 4).
    [((3, 128, 128), 4), ((3, 16, 16), 4), ((12, 12, 12), 6)],
)
def test_feature_extractor_adapts_to_the_measurement(shape, grid):
    extractor = build_feature_extractor(CaptionModelConfig(base_width=8), shape)
    features = extractor(torch.rand(2, *shape))
    assert features.shape == (2, grid * grid, 64)
    with pytest.raises(InputError, match="shape"):
        extractor(torch.rand(2, shape[0] + 1, *shape[1:]))


def test_resnet101_weights_come_only_from_a_local_file(tmp_path):
    missing = tmp_path / "nowhere" / "resnet101.pth"
    with pytest.raises(ConfigError, match=str(missing).replace("\\", "\\\\")):
        resnet101_trunk(3, 64, 64, str(missing), 4)
    from torchvision.models import resnet101

    with torch.device("meta"):  # shapes only: no time spent initializing a second network
        layout = {k: (v.shape, v.dtype) for k, v in resnet101(weights=None).state_dict().items()}
    generator = torch.Generator().manual_seed(1)
    reference = {
        k: torch.rand(shape, generator=generator)
        if dtype.is_floating_point
        else torch.zeros(shape, dtype=dtype)
        for k, (shape, dtype) in layout.items()
    }
    path = tmp_path / "resnet101.pth"
    torch.save(reference, path)
    trunk, dim = resnet101_trunk(12, 32, 32, str(path), 4)
    assert dim == 2048
    assert torch.equal(trunk[4][0].conv1.weight, reference["layer1.0.conv1.weight"])  # layer1
    # the 12-channel stem tiles the RGB kernels, scaled by 3/12
    assert torch.allclose(trunk[0].weight[:, 5], reference["conv1.weight"][:, 2] * 0.25)
    assert trunk(torch.rand(1, 12, 32, 32)).shape == (1, 2048, 4, 4)


# -- decoding ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    config = CaptionModelConfig(base_width=8, embed_dim=16, attention_dim=16, hidden_dim=24)
    return build_caption_model(config, (3, 32, 32), vocab_size=12).eval()


def test_beam_of_one_is_greedy(small_model):
    torch.manual_seed(3)
    features = small_model.features(torch.rand(6, 3, 32, 32)) * 3.0  # sharper word distributions
    greedy = greedy_decode(small_model.decoder, features, max_words=7)
    assert beam_search(small_model.decoder, features, beam_size=1, max_words=7) == greedy
    assert all(len(caption) <= 7 and END not in caption for caption in greedy)


def test_wide_beam_finds_the_most_probable_caption(small_model):
    """With a beam wider than the number of hypotheses, beam search is exhaustive: its caption
    must be the argmax of the teacher-forced log-probability over every caption of ≤ 2 words."""
    torch.manual_seed(4)
    features = small_model.features(torch.rand(2, 3, 32, 32)) * 3.0
    words = [w for w in range(12) if w not in (PAD, START, UNK, END)]
    hypotheses = [[]] + [[a] for a in words] + [[a, b] for a in words for b in words]
    for image in range(2):
        f = features[image : image + 1].expand(len(hypotheses), -1, -1)
        tokens = torch.full((len(hypotheses), 4), PAD)
        steps = torch.tensor([len(h) + 1 for h in hypotheses])
        for j, h in enumerate(hypotheses):
            tokens[j, : len(h) + 2] = torch.tensor([START, *h, END])
        with torch.no_grad():
            logits, _ = small_model.decoder(f, tokens, steps)
        log_probs = logits.log_softmax(-1).gather(2, tokens[:, 1:4].unsqueeze(2)).squeeze(2)
        totals = (log_probs * step_mask(steps, 3)).sum(1)
        best = hypotheses[int(totals.argmax())]
        assert beam_search(
            small_model.decoder, features[image : image + 1], beam_size=len(hypotheses), max_words=2
        ) == [best]


# -- training ----------------------------------------------------------------------------------
def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    vocab = Vocabulary.build(
        ["a red ball", "a blue box", "two red boxes", "one blue ball"], min_count=1
    )
    images = torch.rand(4, 3, 32, 32)
    captions = encode_captions(
        vocab, [["a red ball"], ["a blue box"], ["two red boxes"], ["one blue ball"]], 6
    )
    model = build_caption_model(
        CaptionModelConfig(
            base_width=8, embed_dim=16, attention_dim=16, hidden_dim=32, dropout=0.0
        ),
        (3, 32, 32),
        len(vocab),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses, nll = [], []
    for _ in range(30):
        logits, attention = model(images, captions.tokens, captions.steps)
        loss, parts = caption_loss(
            logits, captions.tokens, captions.steps, attention, regularization=1.0
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        nll.append(parts["nll_per_word"])
    # The word likelihood is learned; the attention term cannot fall below 16 · (1 − 4/16)² = 9
    # here (4 steps spread over 16 locations), so the total falls by less.
    assert nll[-1] < 0.2 * nll[0]
    assert losses[-1] < 0.75 * losses[0]


def test_teacher_forcing_loss_decodes_each_caption_from_its_own_image(small_model):
    """Images given out of order, with different numbers of captions: the batched loss is the
    mean of each caption's loss decoded alone from its own image's features."""
    from privbench.api.evaluation import RunContext
    from privbench.captioning import teacher_forcing_loss, validation_loss

    vocab = Vocabulary.build(["a b c d e f g h"], min_count=1)  # 12 words with the specials
    refs = [["a b c", "d e"], ["f"], ["g h a", "b", "c d e f"]]
    captions = encode_captions(vocab, refs, max_words=6)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    images = torch.tensor([2, 0])
    with torch.no_grad():
        features = small_model.features(x[images])
        result = teacher_forcing_loss(small_model.decoder, features, images, captions, 0.5)
        alone = []
        for position, image in enumerate(images.tolist()):
            for row in captions.rows_of_images(torch.tensor([image])).tolist():
                tokens, steps = captions.tokens[row : row + 1], captions.steps[row : row + 1]
                logits, attention = small_model.decoder(
                    features[position : position + 1], tokens, steps
                )
                alone.append(caption_loss(logits, tokens, steps, attention, 0.5)[0].item())
    assert result.captions == 5 == len(alone)
    assert result.loss.item() == pytest.approx(sum(alone) / len(alone), rel=1e-5)
    # the validation loss is a mean per caption, whatever the batching
    device = RunContext(seed=0).device
    one_by_one = validation_loss(small_model, x, captions, 0.5, batch_size=1, device=device)
    assert one_by_one == pytest.approx(
        validation_loss(small_model, x, captions, 0.5, 3, device), rel=1e-5
    )


# -- the task end to end -------------------------------------------------------------------------
def test_captioning_task_end_to_end_on_low_res_synthfaces_scenes():
    from privbench.api.encoder import encode_batches
    from privbench.api.evaluation import EvalInputs, RunContext
    from privbench.api.registry import get_encoder, get_task, list_tasks
    from privbench.data.synthfaces import build_synthfaces

    assert "captioning" in list_tasks()
    data = build_synthfaces("tiny", seed=0)
    encoder = get_encoder("low-res", size_px=16)
    inputs = EvalInputs(
        data, lambda part, split: encode_batches(encoder, data.part(part)[split].images), "low-res"
    )
    task = get_task(
        "captioning",
        model={"base_width": 8, "embed_dim": 32, "attention_dim": 32, "hidden_dim": 48},
        training={"epochs": 3, "batch_size": 6},
        min_word_count=2,
        meteor=False,
    )
    assert task.role == "utility" and task.requires == ("scenes",) and task.headline == "cider"
    result = task.evaluate(inputs, RunContext(seed=0))
    for name in (
        "bleu_1",
        "bleu_2",
        "bleu_3",
        "bleu_4",
        "rouge_l",
        "cider",
        "baseline_bleu_4",
        "baseline_cider",
    ):
        assert 0.0 <= result.metrics[name] <= (1000.0 if "cider" in name else 100.0), name
    assert result.chance == result.metrics["baseline_cider"]
    # the most frequent caption shares n-grams with the references
    assert result.metrics["baseline_bleu_4"] > 0
    assert result.details["training"]["epochs_run"] == 3
    assert len(result.details["sample_captions"]) == 5
    assert "meteor" not in result.metrics


def _toy_split(count: int, seed: int):
    """Images whose bright quadrant decides the caption."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 3, 32, 32, generator=generator) * 0.3
    names = ["top left", "top right", "bottom left", "bottom right"]
    captions = []
    for i in range(count):
        row, col = divmod(i % 4, 2)
        images[i, :, row * 16 : row * 16 + 16, col * 16 : col * 16 + 16] += 0.6
        captions.append([f"a light in the {names[i % 4]}", f"the {names[i % 4]} is bright"])
    return images, captions


def test_training_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):
    from privbench.api.evaluation import Progress, ProgressBar, RunContext
    from privbench.captioning import CaptionTrainConfig, train_captioner

    train_x, train_refs = _toy_split(8, 0)
    val_x, val_refs = _toy_split(4, 1)
    vocab = Vocabulary.build([t for ts in train_refs for t in ts], min_count=1)
    model_config = CaptionModelConfig(
        base_width=8, embed_dim=16, attention_dim=16, hidden_dim=24, dropout=0.2
    )
    train_config = CaptionTrainConfig(epochs=3, batch_size=4, patience=None, augment_shift=0.0625)
    val_norm = [[normalize_caption(t) for t in ts] for ts in val_refs]

    def run(ctx):
        torch.manual_seed(0)
        model = build_caption_model(model_config, (3, 32, 32), len(vocab))
        return train_captioner(
            model,
            vocab,
            train_x,
            encode_captions(vocab, train_refs, 8),
            val_x,
            encode_captions(vocab, val_refs, 8),
            val_norm,
            train_config,
            model_config,
            ctx,
            "toy",
            max_words=8,
            beam_size=2,
        )

    class Killed(Exception):
        pass

    class KillAfterFirstEpoch(Progress):
        def __call__(self, total, description):
            class Bar(ProgressBar):
                def update(self, advance=1, **info):
                    raise Killed

            return Bar()

    uninterrupted, history = run(RunContext(seed=0, workdir=tmp_path / "a"))
    with pytest.raises(Killed):
        run(RunContext(seed=0, workdir=tmp_path / "b", progress=KillAfterFirstEpoch()))
    resumed, resumed_history = run(RunContext(seed=0, workdir=tmp_path / "b"))
    assert resumed_history.resumed_from_epoch == 1 and len(resumed_history.epochs) == 3
    assert [e["val_cider"] for e in resumed_history.epochs] == [
        e["val_cider"] for e in history.epochs
    ]
    for key, value in uninterrupted.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
