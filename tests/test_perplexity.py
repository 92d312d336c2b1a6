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


@pytest.mark.parametrize("batch_tokens,vocab_chunk", [
    (8, 1),  # nearly every pair alone, one position projected to the vocabulary at a time
    (40, 5),  # a few short pairs together, the vocabulary projected 5 positions at a time
    (10_000, 3),  # everything in one batch
])
def test_token_batches_and_vocabulary_chunks_change_nothing(model, pairs, batch_tokens, vocab_chunk):
    got = perplexity.token_logprobs(model, *pairs, batch_size=64, batch_tokens=batch_tokens, vocab_chunk=vocab_chunk)
    for (p, r), lp in zip(zip(*pairs), got):
        np.testing.assert_allclose(lp, direct(model, p, r), atol=1e-5)


@pytest.mark.parametrize("lengths,batch_size,batch_tokens,expected", [
    ([2, 3, 4, 9], 8, 12, [[0, 1, 2], [3]]),  # 3 rows x 4 = 12 fit; the 9-token pair alone
    ([2, 3, 4, 9], 2, 100, [[0, 1], [2, 3]]),  # at most batch_size pairs
    ([20, 30], 8, 10, [[0], [1]]),  # a pair longer than the budget is scored alone
])
def test_batches_bound_padded_tokens(lengths, batch_size, batch_tokens, expected):
    assert perplexity._batches(range(len(lengths)), lengths, batch_size, batch_tokens) == expected


@pytest.mark.parametrize("window,spare,expected", [
    (None, 0, [[5, 6, 7], [8]]),  # no window: unchanged
    (5, 0, [[5, 6, 7], [8]]),  # 2 + 3 fits 5 positions
    (5, 1, [[5, 6], [8]]),  # one position kept for the token vLLM generates
])
def test_trim_to_the_window(window, spare, expected):
    assert perplexity.trim([[1, 2], [1, 2, 3]], [[5, 6, 7], [8]], window, spare) == expected


def test_trim_refuses_a_prompt_that_fills_the_window():
    with pytest.raises(ValueError, match="pair 1: a prompt of 4 tokens leaves no room"):
        perplexity.trim([[1], [1, 2, 3, 4]], [[5], [6]], 4)


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


# --- stored samples: exactly the sampled tokens, one path for every caller ---------------------------
@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    """A tiny checkpoint's samples of three problems, stored by the runner (token ids included):
    (scorer backend, problems, stored rows). A stop string cuts some samples, the EOS ends others."""
    from tiny_lm import save_tiny_checkpoint

    from boundary import tasks
    from boundary.config import Sampling
    from boundary.sampling import runner
    from boundary.sampling.backends import TransformersBackend
    from boundary.store import Store, make_key
    from boundary.tasks.problem import Problem

    backend = TransformersBackend(save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), eos_boost=3.0),
                                  device="cpu", dtype="float32")
    probs = [Problem(id=f"t/p{i}", benchmark="miniature", question=q, gold="1", answer_type="number")
             for i, q in enumerate(["2+3?", "7*8-1?", "(4+4)/2?"])]
    params = Sampling(temperature=1.0, top_p=1.0, max_new_tokens=12, seed=0, stop=["k"])
    store = Store(tmp_path_factory.mktemp("store"), make_key("tiny", "chat-question", "transformers", params))
    runner.run(backend, store, [(p.id, tasks.render("chat-question", p, backend.tokenizer)) for p in probs], 6, params)
    return backend, probs, store.read()


def test_stored_samples_are_scored_on_their_sampled_tokens(sampled):
    from boundary import tasks
    from boundary.sampling.backends import encode

    backend, probs, df = sampled
    tok = backend.tokenizer
    eos = df.token_ids.map(lambda t: t[-1] == tok.eos_token_id)
    assert {"stop", "length"} <= set(df.finish_reason) and eos.any() and (~eos & (df.finish_reason == "stop")).any(), \
        "samples ended by the EOS, by the stop string, and by the length limit"
    scored = perplexity.of_samples(backend, "chat-question", probs, df)
    by_id = {p.id: p for p in probs}
    for r, ids in zip(scored.itertuples(), df.token_ids):
        prompt = encode(tok, tasks.render("chat-question", by_id[r.problem_id], tok))
        # by hand: the sampled ids, the EOS only where it ended the sample, one token at a time
        assert r.ppl == pytest.approx(float(np.exp(-direct(backend.model, prompt, ids.tolist()).mean())), rel=1e-4)


def test_a_store_without_token_ids_still_scores_with_a_warning(sampled):
    from boundary import tasks
    from boundary.sampling.backends import encode

    backend, probs, df = sampled
    tok = backend.tokenizer
    with pytest.warns(UserWarning, match=f"{len(df)} of {len(df)} samples re-tokenized"):
        scored = perplexity.of_samples(backend, "chat-question", probs, df.drop(columns=["token_ids"]))
    by_id = {p.id: p for p in probs}
    for r in scored.itertuples():  # as before the column: the text re-tokenized, the EOS appended when it stopped
        resp = tok(r.text, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if r.finish_reason == "stop" else [])
        prompt = encode(tok, tasks.render("chat-question", by_id[r.problem_id], tok))
        assert r.ppl == pytest.approx(float(np.exp(-direct(backend.model, prompt, resp).mean())), rel=1e-4)


def test_token_ids_of_another_tokenizer_fall_back_to_the_text(sampled):
    backend, probs, df = sampled
    foreign = df.assign(token_ids=df.token_ids.map(lambda t: [(x + 7) % 30 + 3 for x in t]))  # another vocabulary
    with pytest.warns(UserWarning, match="with token ids of another tokenizer"):
        a = perplexity.of_samples(backend, "chat-question", probs, foreign)
    with pytest.warns(UserWarning):
        b = perplexity.of_samples(backend, "chat-question", probs, df.drop(columns=["token_ids"]))
    np.testing.assert_allclose(a.ppl, b.ppl)
