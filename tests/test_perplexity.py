"""Perplexity of responses: equal to a direct token-by-token computation, whatever the batching."""
import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from boundary import perplexity

VOCAB = 48  # a tiny vocabulary


@pytest.fixture(scope="module")
def model():
    """A tiny Llama with peaked next-token distributions (large init), fixed by its seed."""
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      initializer_range=0.3, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, VOCAB, size=rng.integers(1, 12)).tolist() for _ in range(9)]
    responses = [rng.integers(3, VOCAB, size=rng.integers(1, 20)).tolist() for _ in range(9)]
    return prompts, responses


def direct(model, prompt, response):
    """log p(y_t | x, y_<t) one token at a time, no batching, no padding."""
    out = []
    with torch.no_grad():
        for t in range(len(response)):
            logits = model(torch.tensor([prompt + response[:t]])).logits[0, -1]
            out.append(torch.log_softmax(logits.float(), -1)[response[t]].item())
    return np.array(out)


def test_equals_token_by_token_computation(model, pairs):
    got = perplexity.token_logprobs(model, *pairs, batch_size=4)
    for (p, r), lp in zip(zip(*pairs), got):
        assert lp.shape == (len(r),)
        np.testing.assert_allclose(lp, direct(model, p, r), atol=1e-5)


@pytest.mark.parametrize("batch_size,side", [(1, "left"), (3, "left"), (16, "left"), (1, "right"), (5, "right")])
def test_invariant_to_batch_size_and_padding_side(model, pairs, batch_size, side):
    reference = perplexity.token_logprobs(model, *pairs, batch_size=2)
    got = perplexity.token_logprobs(model, *pairs, batch_size=batch_size, padding_side=side, pad_token_id=7)
    for a, b in zip(reference, got):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_own_samples_are_less_perplexing_than_shuffled_text(model):
    torch.manual_seed(1)
    prompt = [1, 5, 9, 13]
    sampled = model.generate(torch.tensor([prompt] * 8), do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                             max_new_tokens=24, min_new_tokens=24, pad_token_id=0)[:, len(prompt):].tolist()
    rng = np.random.default_rng(0)
    shuffled = [rng.permutation(s).tolist() for s in sampled]
    own = perplexity.perplexity(model, [prompt] * 8, sampled)
    other = perplexity.perplexity(model, [prompt] * 8, shuffled)
    assert np.median(own) < np.median(other)
    assert (own < other).mean() >= 0.75


def test_perplexity_is_exp_of_mean_negative_logprob():
    assert perplexity.from_logprobs([np.log([0.5, 0.5]), np.log([1.0])]).tolist() == pytest.approx([2.0, 1.0])


@pytest.mark.parametrize("prompts,responses,message", [
    ([[1]], [[2], [3]], "1 prompts but 2 responses"),
    ([[1]], [[]], "pair 0: empty response"),
    ([[]], [[4]], "pair 0: empty prompt"),
])
def test_bad_input(model, prompts, responses, message):
    with pytest.raises(ValueError, match=message):
        perplexity.token_logprobs(model, prompts, responses)
