"""A lean one-token decode step for Llama-family models, reading the Hugging Face module's own weights.

Why: on a CPU, a small model's decode step is dominated by the Hugging Face forward's per-call
overhead (module dispatch, mask construction, cache bookkeeping, output dataclasses), not by its
FLOPs; this step does the same arithmetic in a few dozen tensor calls. It is for the miniature
and other small models sampled on CPUs; vLLM is the engine for large models on GPUs.

What it computes, for one new token per row (the prompt was prefilled by the HF forward, whose
cache the engine keeps in its in-place buffers): the embedding, then per layer RMSNorm,
q/k/v projections (with biases where the model has them, as Qwen2), rotary embeddings with the
cos/sin of the model's own `rotary_emb` module (so rope scaling stays as the model defines it)
applied by the modeling code's formula, the new key/value written into the buffer (`layer.update`),
`F.scaled_dot_product_attention` under the padding mask (grouped-query heads included),
the output projection, RMSNorm and the SiLU-gated MLP; then the final norm and the (tied or
untied) lm_head. No weight is copied: the step holds references to the module's parameters.

Coverage is decided once per model by `unsupported(model)`, which names the reason a model is
not covered (another architecture, sliding-window or non-SiLU layers, ...); the engine then uses
the HF forward instead. tests/test_sampling_lean.py checks the logits against the HF forward.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

COVERED = ("LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM")  # classes whose layers this step mirrors
# Vision-language models whose text decoder is one of those: after the prefill has read the image,
# each decode step is the decoder's alone (one text token in, 1-D positions), so the same step serves.
VISION = {"LlavaForConditionalGeneration": ("llama", "qwen2", "mistral")}  # class -> covered text model types


def _text(model):
    """(name, text config, decoder module with layers/norm/rotary, lm_head) of a covered class."""
    name = type(model).__name__
    if name in VISION:
        return name, model.config.text_config, model.model.language_model, model.lm_head
    return name, model.config, model.model, model.lm_head


def unsupported(model) -> str | None:
    """Why the lean step cannot decode `model` (a sentence), or None when it can."""
    name = type(model).__name__
    if name in VISION:
        kind = model.config.text_config.model_type
        if kind not in VISION[name]:
            return f"{name} with a {kind!r} text model (covered: {', '.join(VISION[name])})"
    elif name not in COVERED:
        return f"{name} is not one of {', '.join(COVERED + tuple(VISION))}"
    cfg = _text(model)[1]
    if getattr(cfg, "hidden_act", "silu") != "silu":
        return f"{name}: hidden_act {cfg.hidden_act!r}, the lean step has SiLU only"
    if getattr(cfg, "pretraining_tp", 1) != 1:
        return f"{name}: pretraining_tp {cfg.pretraining_tp} (sliced projections)"
    if getattr(cfg, "mlp_bias", False):
        return f"{name}: mlp_bias (the lean MLP has no biases)"
    layer_types = getattr(cfg, "layer_types", None) or ["full_attention"]
    if getattr(cfg, "sliding_window", None) is not None and getattr(cfg, "use_sliding_window", True):
        return f"{name}: sliding-window attention"
    if any(t != "full_attention" for t in layer_types):
        return f"{name}: layer types {sorted(set(layer_types))}, the lean step has full attention only"
    if model.training:
        return f"{name} is in training mode (dropout)"
    return None


class LeanStep:
    """Callable `step(tokens, positions, mask, layers) -> logits` over `model`'s own parameters."""

    def __init__(self, model):
        reason = unsupported(model)
        if reason is not None:
            raise NotImplementedError(f"lean decode step: {reason}")
        _, cfg, inner, head = _text(model)
        self.embed = inner.embed_tokens.weight  # [vocab, hidden]
        self.rotary = inner.rotary_emb  # the model's rotary module (rope type and scaling included)
        self.norm = (inner.norm.weight, inner.norm.variance_epsilon)  # final RMSNorm (weight, eps)
        self.head = (head.weight, head.bias)  # lm_head, tied to embed or not
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads  # query / key-value heads
        attn = inner.layers[0].self_attn
        self.head_dim, self.scaling = attn.head_dim, attn.scaling  # per-head width, 1/sqrt(head_dim)
        self.layers = [  # per decoder layer: the parameters it reads, in order of use
            (l.input_layernorm.weight, l.input_layernorm.variance_epsilon,
             l.self_attn.q_proj, l.self_attn.k_proj, l.self_attn.v_proj, l.self_attn.o_proj,
             l.post_attention_layernorm.weight, l.post_attention_layernorm.variance_epsilon,
             l.mlp.gate_proj.weight, l.mlp.up_proj.weight, l.mlp.down_proj.weight)
            for l in inner.layers]

    @staticmethod
    def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        """RMSNorm as LlamaRMSNorm: torch's fused kernel in float32; in steps (its own order) otherwise."""
        if x.dtype == torch.float32:
            return F.rms_norm(x, weight.shape, weight, eps)
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
        return weight * h.to(x.dtype)

    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, layers) -> torch.Tensor:
        """Float32 next-token logits [rows, vocab] after feeding `tokens` [rows].

        positions: [rows] rotary position of each new token; mask: [rows, columns] (nonzero where
        a key is attended, the new token's column included); layers: the engine's buffer cache
        layers (`update(k, v)` writes the new column and returns the valid keys and values).
        """
        b = tokens.shape[0]
        x = F.embedding(tokens, self.embed)[:, None]  # [rows, 1, hidden]
        cos, sin = (c[:, None] for c in self.rotary(x, positions[:, None]))  # [rows, 1, 1, head dim]
        half = self.head_dim // 2
        keep = mask.bool()[:, None, None, :]  # [rows, 1, 1, columns]
        gqa = self.heads != self.kv_heads
        for (w1, e1, q_proj, k_proj, v_proj, o_proj, w2, e2, wg, wu, wd), cache in zip(self.layers, layers):
            h = self._rms(x, w1, e1)
            q = F.linear(h, q_proj.weight, q_proj.bias).view(b, self.heads, 1, self.head_dim)
            k = F.linear(h, k_proj.weight, k_proj.bias).view(b, self.kv_heads, 1, self.head_dim)
            v = F.linear(h, v_proj.weight, v_proj.bias).view(b, self.kv_heads, 1, self.head_dim)
            # rotary embedding of queries and keys together: x cos + rotate_half(x) sin, the formula
            # of the modeling code's apply_rotary_pos_emb, in 6 tensor calls instead of 14
            qk = torch.cat([q, k], dim=1)
            qk = qk * cos + torch.cat([-qk[..., half:], qk[..., :half]], dim=-1) * sin
            q, k = qk[:, :self.heads], qk[:, self.heads:]
            keys, values = cache.update(k, v)
            a = F.scaled_dot_product_attention(q, keys, values, attn_mask=keep, scale=self.scaling, enable_gqa=gqa)
            x = x + F.linear(a.transpose(1, 2).reshape(b, 1, -1), o_proj.weight, o_proj.bias)
            h = self._rms(x, w2, e2)
            x = x + F.linear(F.silu(F.linear(h, wg)) * F.linear(h, wu), wd)
        x = self._rms(x, *self.norm)
        return F.linear(x[:, 0], *self.head).float()
