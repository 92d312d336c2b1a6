"""The lean decode step (boundary.sampling.lean): the HF forward's logits, its coverage check, its use by decode."""
import pytest
import torch
from tiny_lm import tiny_llama, tiny_llava
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM

from boundary.sampling import decode
from boundary.sampling.lean import LeanStep, unsupported

PROMPTS = [[1, 5, 6, 7], [1, 9], [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]  # different lengths: left padding


def small(cls, config_cls, seed: int = 0, **kw):
    """A random model of class `cls` (vocab 40, hidden 64, 2 layers, 4 query / 2 key-value heads), eval mode."""
    torch.manual_seed(seed)
    base = dict(vocab_size=40, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.5, pad_token_id=0,
                bos_token_id=1, eos_token_id=2)
    cfg = config_cls(**{**base, **kw})
    return cls(cfg).eval()


MODELS = {
    "llama, grouped-query heads": lambda: tiny_llama(0),
    "llama, multi-head, untied head": lambda: small(LlamaForCausalLM, LlamaConfig, num_key_value_heads=4,
                                                     tie_word_embeddings=False),
    "llama, tied head": lambda: small(LlamaForCausalLM, LlamaConfig, tie_word_embeddings=True),
    "llama, linear rope scaling": lambda: small(LlamaForCausalLM, LlamaConfig,
                                                rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}),
    "qwen2, q/k/v biases": lambda: small(Qwen2ForCausalLM, Qwen2Config),
}


def reference(model, prompt: list[int], generated: list[int]) -> torch.Tensor:
    """The HF forward's float32 last-position logits of prompt + generated, alone (no padding, no cache)."""
    with torch.no_grad():
        return model(torch.tensor([prompt + generated])).logits[0, -1].float()


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("prompts", [
    PROMPTS[:1],  # one row: no padding
    PROMPTS,  # three lengths: left padding in the cache and the mask
])
def test_lean_logits_equal_the_hf_forward(name, prompts):
    model = MODELS[name]()
    assert unsupported(model) is None
    step = LeanStep(model)
    torch.manual_seed(1)
    with torch.inference_mode():
        memo = dict(enumerate(decode._prefill(model, prompts, pad_token_id=0)))
        lengths = torch.tensor([len(p) for p in prompts])
        width = int(lengths.max())
        cache = decode._batch_cache(list(range(len(prompts))), memo, lengths, capacity=width + 8, slots=len(prompts))
        mask = (torch.arange(width) >= (width - lengths)[:, None]).long()
        generated: list[list[int]] = [[] for _ in prompts]
        for t in range(6):  # several steps: the buffer grows, rotary positions advance
            fed = torch.randint(3, 40, (len(prompts),))
            for g, tok in zip(generated, fed.tolist()):
                g.append(tok)
            mask = torch.cat([mask, mask.new_ones((len(prompts), 1))], dim=1)
            logits = step(fed, lengths + t, mask, cache.layers)
            for r, p in enumerate(prompts):
                # float32 sums in another order (cached vs whole sequence): a wrong rotary position,
                # mask or head layout moves logits by ~0.1-10
                torch.testing.assert_close(logits[r], reference(model, p, generated[r]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("build, reason", [
    (lambda: small(LlamaForCausalLM, LlamaConfig).model, "LlamaModel is not one of"),  # another architecture: HF forward
    (lambda: small(MistralForCausalLM, MistralConfig, sliding_window=8), "sliding-window"),  # windowed attention
    (lambda: small(LlamaForCausalLM, LlamaConfig, hidden_act="gelu"), "hidden_act 'gelu'"),  # another activation
    (lambda: small(LlamaForCausalLM, LlamaConfig, mlp_bias=True), "mlp_bias"),  # MLP biases
    (lambda: tiny_llama(0).train(), "training mode"),  # dropout would be on
])
def test_uncovered_models_name_the_reason(build, reason):
    model = build()
    assert reason in unsupported(model)
    with pytest.raises(NotImplementedError, match="lean decode step"):
        LeanStep(model)


def test_mistral_without_a_window_is_covered():
    assert unsupported(small(MistralForCausalLM, MistralConfig, sliding_window=None)) is None


@pytest.mark.parametrize("temperature", [
    0.0,  # greedy: every sample of a prompt stays one node
    1.0,  # sampled: nodes split and merge
])
def test_decode_samples_the_same_with_the_hf_forward(monkeypatch, temperature):
    """The engine's samples with the lean step equal those with the HF forward (the fallback)."""
    model = tiny_llama(0)
    kw = dict(temperature=temperature, max_new_tokens=20, stop_token_ids=[2], batch_size=7)

    def run():
        out = decode.generate(model, PROMPTS, [11, 12, 13], [range(6)] * 3, seed=0, **kw)
        return sorted((c.prompt, c.sample, tuple(c.tokens), c.finish_reason) for c in out)

    lean = run()
    monkeypatch.setattr(decode, "unsupported", lambda m: "forced off by the test")
    assert run() == lean


def test_a_llava_decodes_with_the_lean_step_as_with_the_hf_forward(monkeypatch):
    """A LLaVA's decode steps run its Llama decoder alone: the engine's samples with the lean step
    equal those with the HF forward, the image read once by the prefill (`extra`)."""
    from tiny_lm import IMAGE_TOKEN

    vlm = tiny_llava()
    assert unsupported(vlm) is None
    prompts = [[1] + [IMAGE_TOKEN] * 5 + [5, 6, 7], [1] + [IMAGE_TOKEN] * 5 + [9]]
    images = [{"pixel_values": torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(s))} for s in range(2)]

    def run():
        out = decode.generate(vlm, prompts, [3, 4], [range(6)] * 2, seed=0, temperature=1.0, max_new_tokens=12,
                              stop_token_ids=[2], batch_size=8, extra=images)
        return sorted((c.prompt, c.sample, tuple(c.tokens), c.finish_reason) for c in out)

    lean = run()
    monkeypatch.setattr(decode, "unsupported", lambda m: "forced off by the test")
    assert run() == lean
