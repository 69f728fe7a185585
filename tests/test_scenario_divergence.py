"""The numeric-noise check behind every scenario's "identical outputs": on the tiny model on CPU, a real
forward pass measures how far the reference model prefers its own token at the first difference."""

from __future__ import annotations

import pytest
import torch

from inference_study.scenarios.common import divergence
from inference_study.scenarios.records import Divergence, agreement
from inference_study.workload import synthetic_input_ids


@pytest.fixture(scope="module")
def prompt_and_greedy(backend):
    prompt = synthetic_input_ids(1, 24, backend.model_config.vocab_size, 0)[0]
    return prompt, backend.greedy(prompt, 8).output_ids


def test_identical_outputs_have_no_divergence(backend, prompt_and_greedy) -> None:
    prompt, greedy = prompt_and_greedy
    assert divergence(backend, "same", prompt, greedy, list(greedy)) is None


@pytest.mark.parametrize("rank", [1, -1], ids=["runner-up", "least-likely"])
def test_a_flipped_token_is_located_and_its_gap_measured(backend, prompt_and_greedy, rank) -> None:
    """A wrong token (the runner-up or the least likely) at position 3: found there, with the logit gap the
    model's own forward pass gives, far above float32 noise."""
    prompt, greedy = prompt_and_greedy
    with torch.inference_mode():
        logits = backend.model(input_ids=torch.tensor([prompt + greedy[:3]])).logits[0, -1]
    wrong = int(logits.argsort(descending=True)[rank])
    candidate = greedy[:3] + [wrong] + greedy[4:]
    found = divergence(backend, "flipped", prompt, greedy, candidate)
    assert found.position == 3
    assert found.logit_gap == pytest.approx(float(logits[greedy[3]] - logits[wrong]), rel=1e-4)
    assert found.logit_gap > 0 and not found.within_noise
    assert found.tolerance == pytest.approx(10 * torch.finfo(torch.float32).eps * float(logits.abs().max()), rel=1e-4)


def _divergence(gap: float) -> Divergence:
    return Divergence(what="x", position=5, logit_gap=gap, tolerance=0.01, within_noise=gap <= 0.01)


def test_agreement_accepts_only_near_ties() -> None:
    assert agreement(True, []) == (True, "identical")
    agree, words = agreement(False, [_divergence(0.004), _divergence(-0.002)])
    assert agree and "near-tie within numeric noise (2; largest logit gap 0.004" in words
    agree, words = agreement(False, [_divergence(0.004), _divergence(0.5)])
    assert not agree and "beyond numeric noise (x at token 5, logit gap 0.5)" in words
    assert agreement(False, []) == (False, "DIFFERENT beyond numeric noise (not checked)")
