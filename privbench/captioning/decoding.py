"""Decoding captions from measurements: greedy decoding and beam search over the attention
LSTM, and :func:`generate_captions` (one caption per image, in batches).

Beam search keeps the hypothesis of highest total log-probability; greedy decoding is beam
size 1. Generated captions never contain ``<pad>``, ``<start>`` or ``<unk>``.
"""

from __future__ import annotations

import torch

from privbench.api.errors import ConfigError
from privbench.captioning.model import AttentionLSTMDecoder, CaptionModel, DecoderState
from privbench.captioning.vocabulary import END, PAD, START, UNK, Vocabulary


def _banned_words(vocab_size: int, device: torch.device) -> torch.Tensor:
    """Log-probability offsets that forbid ``<pad>``, ``<start>`` and ``<unk>`` in
    generated captions."""
    offsets = torch.zeros(vocab_size, device=device)
    offsets[[PAD, START, UNK]] = float("-inf")
    return offsets


@torch.no_grad()
def greedy_decode(
    decoder: AttentionLSTMDecoder, features: torch.Tensor, max_words: int
) -> list[list[int]]:
    """The most probable next word at every step, until ``<end>`` or ``max_words`` words."""
    batch = features.shape[0]
    projected = decoder.project(features)
    state = decoder.initial_state(features)
    banned = _banned_words(decoder.vocab_size, features.device)
    words = torch.full((batch,), START, dtype=torch.long, device=features.device)
    done = torch.zeros(batch, dtype=torch.bool, device=features.device)
    chosen = []
    for _ in range(max_words):
        logits, state, _ = decoder.step(features, projected, words, state)
        words = (logits.log_softmax(dim=1) + banned).argmax(dim=1)
        chosen.append(words)
        done |= words == END
        if bool(done.all()):
            break
    rows = torch.stack(chosen, dim=1).tolist() if chosen else [[] for _ in range(batch)]
    return [row[: row.index(END)] if END in row else row for row in rows]


@torch.no_grad()
def beam_search(
    decoder: AttentionLSTMDecoder, features: torch.Tensor, beam_size: int, max_words: int
) -> list[list[int]]:
    """Beam search per image: keep the ``beam_size`` partial captions of highest total
    log-probability; a hypothesis that emits ``<end>`` is complete; the answer is the complete
    caption of highest total log-probability (an image stops as soon as no partial caption can
    beat it, since log-probabilities only add up to less). A caption has at most ``max_words``
    words: the step after them may only emit ``<end>``. ``beam_size = 1`` is greedy decoding.
    """
    if beam_size < 1:
        raise ConfigError(f"beam_size must be at least 1; got {beam_size}.")
    batch = features.shape[0]
    k = beam_size
    device = features.device
    vocab = decoder.vocab_size
    features = features.repeat_interleave(k, dim=0)
    projected = decoder.project(features)
    state = decoder.initial_state(features)
    banned = _banned_words(vocab, device)
    scores = torch.full((batch, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one
    words = torch.full((batch * k,), START, dtype=torch.long, device=device)
    sequences = torch.zeros(batch * k, 0, dtype=torch.long, device=device)
    best_complete: list[tuple[float, list[int]] | None] = [None] * batch
    base = (torch.arange(batch, device=device) * k).unsqueeze(1)
    only_end = torch.full((vocab,), float("-inf"), device=device)
    only_end[END] = 0.0
    for step in range(max_words + 1):
        logits, state, _ = decoder.step(features, projected, words, state)
        log_probs = logits.log_softmax(dim=1) + (only_end if step == max_words else banned)
        candidates = (scores.unsqueeze(2) + log_probs.view(batch, k, vocab)).view(batch, k * vocab)
        top_scores, top_index = candidates.topk(k, dim=1)
        source = (base + torch.div(top_index, vocab, rounding_mode="floor")).flatten()
        words = (top_index % vocab).flatten()
        sequences = sequences[source]
        state = DecoderState(state.h[source], state.c[source])
        ended = (words == END).view(batch, k) & torch.isfinite(top_scores)
        for b, j in torch.nonzero(ended).tolist():
            score = float(top_scores[b, j])
            if best_complete[b] is None or score > best_complete[b][0]:
                best_complete[b] = (score, sequences[b * k + j].tolist())
        scores = top_scores.masked_fill(ended, float("-inf"))
        sequences = torch.cat([sequences, words.unsqueeze(1)], dim=1)
        for b in range(batch):  # nothing left that could beat the best complete caption
            if best_complete[b] is not None and float(scores[b].max()) <= best_complete[b][0]:
                scores[b] = float("-inf")
        if not bool(torch.isfinite(scores).any()):
            break
    results = []
    for b in range(batch):
        if best_complete[b] is not None:
            results.append(best_complete[b][1])
        else:
            results.append(sequences[b * k + int(scores[b].argmax())].tolist())
    return results


@torch.no_grad()
def generate_captions(
    model: CaptionModel,
    images: torch.Tensor,
    vocabulary: Vocabulary,
    *,
    beam_size: int,
    max_words: int,
    batch_size: int = 64,
    device: torch.device | str | None = None,
) -> list[str]:
    """One caption per image (beam search; ``beam_size = 1`` decodes greedily)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    captions: list[str] = []
    for chunk in images.split(batch_size):
        features = model.features(chunk.to(device).float())
        if beam_size == 1:
            ids = greedy_decode(model.decoder, features, max_words)
        else:
            ids = beam_search(model.decoder, features, beam_size, max_words)
        captions.extend(vocabulary.decode(row) for row in ids)
    model.train(was_training)
    return captions
