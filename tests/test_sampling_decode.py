"""The decode engine (boundary.sampling.decode): reproducible, batch-independent, exact in distribution."""
import pytest
import torch
from scipy.stats import chisquare
from tiny_lm import tiny_llama

from boundary.sampling import decode
from boundary.sampling.decode import Completion, generate, problem_key

PROMPTS = [[1, 5, 6, 7], [1, 9], [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]  # different lengths: padding matters
KEYS = [problem_key(p) for p in ("p0", "p1", "p2")]


@pytest.fixture(scope="module")
def model():
    return tiny_llama(0)


def run(model, prompts=PROMPTS, keys=KEYS, samples=None, seed=0, **kw) -> dict[tuple[int, int], Completion]:
    """Completions keyed by (problem key, sample index), so runs over different prompt lists compare."""
    samples = samples if samples is not None else [range(6)] * len(prompts)
    kw = {"max_new_tokens": 24, "stop_token_ids": [2], "temperature": 1.0, **kw}
    out = {}
    for c in generate(model, prompts, keys, samples, seed, **kw):
        assert (keys[c.prompt], c.sample) not in out, "a (prompt, sample) was yielded twice"
        out[keys[c.prompt], c.sample] = c
    return out


def pooled(expected: torch.Tensor, observed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool the cells expected fewer than 5 times into one (the chi-square approximation needs >= 5)."""
    small = expected < 5
    if not small.any():
        return expected, observed
    return (torch.cat([expected[~small], expected[small].sum(0, keepdim=True)]),
            torch.cat([observed[~small], observed[small].sum(0, keepdim=True)]))


def splitmix_reference(x: int) -> int:
    """splitmix64 in Python integers, the specification the torch version must match bit for bit."""
    m = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


@pytest.mark.parametrize("x", [
    0,  # the zero counter
    1,  # small
    2**63 - 1,  # largest int64: the increment overflows
    -1,  # all bits set: arithmetic vs logical shift differs
    -(2**63),  # only the sign bit
    123456789123456789,  # arbitrary
])
def test_mix_is_splitmix64(x):
    got = decode._mix(torch.tensor([x], dtype=torch.long)).item() & ((1 << 64) - 1)
    assert got == splitmix_reference(x & ((1 << 64) - 1))


def test_problem_key_is_stable_and_distinct():
    assert problem_key("math500/17") == problem_key("math500/17")
    assert problem_key("math500/17") != problem_key("math500/18")
    assert 0 <= problem_key("x") < 2**63
    assert problem_key("a") == 0x654BC089650DDEE5  # sha256("a")[:8] >> 1, fixed forever


def test_seeds_reproduce_and_differ(model):
    a, b, c = run(model, seed=3), run(model, seed=3), run(model, seed=4)
    assert a == b
    assert sum(a[k].tokens != c[k].tokens for k in a) > len(a) // 2


def test_all_requested_samples_yielded_once(model):
    out = run(model, samples=[[0, 5, 9], [], [7]])
    assert sorted(out) == sorted([(KEYS[0], 0), (KEYS[0], 5), (KEYS[0], 9), (KEYS[2], 7)])


@pytest.mark.parametrize("batch_size", [
    1,  # one row at a time: no padding, no sharing
    4,  # rows of two prompts share a batch
    7,  # batches cut mid-prompt
    256,  # everything in one batch
])
def test_batch_size_does_not_change_samples(model, batch_size):
    assert run(model, batch_size=batch_size) == run(model, batch_size=5)


def test_batch_composition_does_not_change_samples(model):
    full = run(model)
    # a top-up: only some indices, prompts in another order, one prompt absent
    part = run(model, prompts=[PROMPTS[2], PROMPTS[0]], keys=[KEYS[2], KEYS[0]], samples=[[5, 1], [3]], batch_size=2)
    assert len(part) == 3
    for k, c in part.items():  # same tokens and reason (the prompt index differs by construction)
        assert (c.sample, c.tokens, c.finish_reason) == (full[k].sample, full[k].tokens, full[k].finish_reason)


def test_sample_depends_on_key_and_index_not_prompt_position(model):
    # the same prompt under two keys gives different samples; under the same key, the same ones
    out = run(model, prompts=[PROMPTS[0], PROMPTS[0]], keys=[11, 12])
    same = run(model, prompts=[PROMPTS[0]], keys=[11])
    assert {k: v.tokens for k, v in out.items() if k[0] == 11} == {k: v.tokens for k, v in same.items()}
    assert any(out[11, i].tokens != out[12, i].tokens for i in range(6))


def test_stop_and_length_finish_reasons(model):
    free = run(model, stop_token_ids=[], max_new_tokens=24)  # no stop: every sample runs to the length
    stopped = run(model, stop_token_ids=[2, 7], max_new_tokens=24)
    assert all(c.finish_reason == "length" and len(c.tokens) == 24 for c in free.values())
    reasons = {c.finish_reason for c in stopped.values()}
    assert reasons == {"stop", "length"}, "the fixture should exercise both reasons"
    for k, c in stopped.items():
        ref = free[k].tokens
        first = next((t for t, tok in enumerate(ref) if tok in (2, 7)), None)
        if first is None:  # never stopped: the whole length, no stop token
            assert c.finish_reason == "length" and c.tokens == ref
        else:  # cut before the first stop token, which is excluded
            assert c.finish_reason == "stop" and c.tokens == ref[:first]


def test_a_stop_token_at_the_last_step_is_a_stop(model):
    free = run(model, stop_token_ids=[], max_new_tokens=24)
    k, c = next((k, c) for k, c in free.items() if c.tokens[5] not in c.tokens[:5])
    out = run(model, prompts=[PROMPTS[KEYS.index(k[0])]], keys=[k[0]], samples=[[k[1]]],
              stop_token_ids=[c.tokens[5]], max_new_tokens=6)
    assert list(out.values())[0] == Completion(0, k[1], c.tokens[:5], "stop", stop_token=c.tokens[5])  # which stop token ended it


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_equals_model_generate(model, prompt):
    ours = run(model, prompts=[prompt], keys=[0], samples=[[0, 1]], temperature=0.0, stop_token_ids=[], max_new_tokens=30)
    ref = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=30, min_new_tokens=30, pad_token_id=0)
    assert ours[0, 0].tokens == ref[0, len(prompt):].tolist()
    assert ours[0, 1].tokens == ours[0, 0].tokens  # greedy ignores the sample index


def test_greedy_in_a_padded_batch_equals_alone(model):
    together = run(model, temperature=0.0, samples=[[0]] * 3, stop_token_ids=[], max_new_tokens=30)
    for j, p in enumerate(PROMPTS):
        alone = run(model, prompts=[p], keys=[KEYS[j]], samples=[[0]], temperature=0.0, stop_token_ids=[], max_new_tokens=30)
        assert alone[KEYS[j], 0].tokens == together[KEYS[j], 0].tokens


@pytest.mark.parametrize("temperature, top_p", [
    (1.0, 1.0),  # the model's own distribution
    (0.6, 0.95),  # the paper's setting
    (1.3, 0.7),  # hot, with a tight nucleus that removes many tokens
])
def test_first_token_distribution_is_exact(model, temperature, top_p):
    n = 6000
    prompt = PROMPTS[0]
    got = run(model, prompts=[prompt], keys=[42], samples=[range(n)], temperature=temperature, top_p=top_p,
              max_new_tokens=1, stop_token_ids=[], batch_size=2000)
    counts = torch.bincount(torch.tensor([c.tokens[0] for c in got.values()]), minlength=40).double()
    with torch.no_grad():
        logits = model(torch.tensor([prompt])).logits[:, -1].float()
    probs = decode.probabilities(logits, temperature, top_p)[0]
    kept = probs > 0
    assert counts[~kept].sum() == 0, "a token outside the top-p nucleus was drawn"
    assert (~kept).any() == (top_p < 1.0)
    # pool rare cells so every expected count is >= 5 (chi-square validity)
    exp, obs = pooled(probs[kept] * n, counts[kept])
    assert chisquare(obs.numpy(), exp.numpy() * obs.sum().item() / exp.sum().item()).pvalue > 1e-3


def test_two_token_sequence_distribution_is_exact(model):
    """Joint law of the first two tokens vs P(t1) P(t2 | t1) from the model, top-p applied at each step."""
    n, prompt, t, p = 6000, PROMPTS[1], 0.8, 0.9
    got = run(model, prompts=[prompt], keys=[7], samples=[range(n)], temperature=t, top_p=p, max_new_tokens=2,
              stop_token_ids=[], batch_size=3000)
    with torch.no_grad():
        first = decode.probabilities(model(torch.tensor([prompt])).logits[:, -1], t, p)[0]
        heads = first.nonzero().flatten()
        seqs = torch.tensor([prompt + [h] for h in heads.tolist()])
        second = decode.probabilities(model(seqs).logits[:, -1], t, p)
    joint = first[heads, None] * second  # [heads, vocab]
    obs = torch.zeros_like(joint)
    row = {h: r for r, h in enumerate(heads.tolist())}
    for c in got.values():
        obs[row[c.tokens[0]], c.tokens[1]] += 1
    assert obs[joint == 0].sum() == 0
    exp, o = pooled(joint[joint > 0] * n, obs[joint > 0])
    assert chisquare(o.numpy(), exp.numpy() * o.sum().item() / exp.sum().item()).pvalue > 1e-3


@pytest.mark.parametrize("kwargs, match", [
    ({"keys": [1]}, "differ in length"),  # one key for three prompts
    ({"samples": [[0, 0], [1], [2]]}, "distinct"),  # a repeated sample index
    ({"prompts": [[1], [], [2]]}, "prompt 1 is empty"),  # an empty prompt
    ({"top_p": 0.0}, "top_p"),  # an empty nucleus
    ({"temperature": -1.0}, "temperature"),  # negative temperature
])
def test_bad_arguments_name_the_culprit(model, kwargs, match):
    args = {"prompts": PROMPTS, "keys": KEYS, "samples": [[0], [1], [2]], **kwargs}
    with pytest.raises(ValueError, match=match):
        list(generate(model, args.pop("prompts"), args.pop("keys"), args.pop("samples"), 0, **args))


def test_the_callers_training_mode_is_restored(model):
    model.train()
    try:
        train_mode = run(model, samples=[[0]] * 3)
        assert model.training, "generate must hand the model back in training mode (GRPO alternates)"
    finally:
        model.eval()
    assert train_mode == run(model, samples=[[0]] * 3)  # dropout (if any) was off while sampling


def test_prefill_extra_feeds_a_vision_language_model():
    """`extra` pixel values reach the prefill: the image changes the samples, and a prompt's samples
    do not depend on which other prompts (and images) share its prefill batch."""
    from tiny_lm import IMAGE_TOKEN, tiny_llava

    vlm = tiny_llava()
    prompt = [1] + [IMAGE_TOKEN] * 5 + [5, 6, 7]  # 16x16 image, 8x8 patches: 4 + 1 features
    img = [torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(s)) for s in range(2)]
    kw = dict(temperature=1.0, max_new_tokens=8, stop_token_ids=[2], batch_size=8)

    def run(prompts, images, keys):
        out = generate(vlm, prompts, keys, [range(8)] * len(prompts), seed=0,
                       extra=[{"pixel_values": i} for i in images], **kw)
        return sorted((c.prompt, c.sample, tuple(c.tokens)) for c in out)

    alone = [run([prompt], [img[s]], [7]) for s in range(2)]
    assert alone[0] != alone[1]  # same prompt, key and seed: only the image differs
    together = run([prompt, prompt[:1] + [9] + prompt[1:]], [img[0], img[1]], [7, 8])
    assert [c for c in together if c[0] == 0] == alone[0]
    with pytest.raises(ValueError, match="extra has 1 entries for 2 prompts"):
        list(generate(vlm, [prompt, prompt], [1, 2], [[0], [0]], seed=0, extra=[{"pixel_values": img[0]}]))


def test_rows_in_the_same_state_are_computed_once(model, monkeypatch):
    """Greedy samples of one prompt never split: each step computes one row, whatever n; sampled
    rows split into nodes, never more than batch_size of them (the memory bound)."""
    from boundary.sampling.lean import LeanStep

    computed = []  # rows fed to each decode step
    step = LeanStep.__call__
    monkeypatch.setattr(LeanStep, "__call__", lambda self, tokens, *a: computed.append(len(tokens)) or step(self, tokens, *a))
    run(model, prompts=[PROMPTS[0]], keys=[0], samples=[range(8)], temperature=0.0, stop_token_ids=[], max_new_tokens=10)
    assert computed == [1] * 9  # the last token needs no forward
    computed.clear()
    run(model, samples=[range(6)] * 3, batch_size=5, stop_token_ids=[], max_new_tokens=12)
    assert max(computed) <= 5 and max(computed) > 1


def test_a_vision_language_model_never_samples_its_image_placeholder():
    """The image token is input-only: even where the model puts mass on it, no sample contains it."""
    from tiny_lm import IMAGE_TOKEN, tiny_llava

    vlm = tiny_llava()
    prompt = [1] + [IMAGE_TOKEN] * 5 + [5, 6, 7]
    image = {"pixel_values": torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))}
    with torch.no_grad():  # the placeholder made the likeliest first token: its head row, 3x the top token's
        first = vlm(torch.tensor([prompt]), **image).logits[0, -1]
        top = int(first.argmax())
        assert first[top] > 0
        vlm.lm_head.weight[IMAGE_TOKEN] = 3 * vlm.lm_head.weight[top]
    assert decode.placeholders(vlm) == [IMAGE_TOKEN] and decode.placeholders(tiny_llama()) == []
    out = list(generate(vlm, [prompt], [7], [range(32)], seed=0, temperature=1.0, max_new_tokens=12,
                        stop_token_ids=[2], extra=[image]))
    assert len(out) == 32 and not any(IMAGE_TOKEN in c.tokens for c in out)


@pytest.mark.parametrize("window", [
    8,  # shorter than every prompt's budget: each prompt gets window - its length
    20,  # the longest prompt (11 tokens) gets 9 tokens, the shorter ones max_new_tokens (12)
])
def test_a_full_window_ends_a_sample_with_length(model, window):
    free = run(model, stop_token_ids=[], max_new_tokens=12)
    if window <= max(map(len, PROMPTS)):  # a prompt that fills its window is refused before decoding
        with pytest.raises(ValueError, match="prompt 2 has 11 tokens and fills the model's window of 8"):
            run(model, stop_token_ids=[], max_new_tokens=12, max_positions=window)
        prompts, keys = PROMPTS[:2], KEYS[:2]
        free = run(model, prompts=prompts, keys=keys, stop_token_ids=[], max_new_tokens=12)
    else:
        prompts, keys = PROMPTS, KEYS
    capped = run(model, prompts=prompts, keys=keys, stop_token_ids=[], max_new_tokens=12, max_positions=window)
    for (key, i), c in capped.items():
        room = min(12, window - len(prompts[keys.index(key)]))
        assert c.finish_reason == "length" and len(c.tokens) == room, "prompt + completion fill the window exactly"
        assert c.tokens == free[key, i].tokens[:room], "the same sample, ended where the window is full"
