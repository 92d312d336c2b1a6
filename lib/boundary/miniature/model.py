"""The miniature's model: a small `LlamaForCausalLM`, seeded, and its save/load as a checkpoint.

Every miniature model (base, teacher, RL, distilled) has this architecture; only the weights
differ. Checkpoints are ordinary Hugging Face folders (`save_pretrained` of model and tokenizer),
so every backend and notebook treats them like real models.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from boundary.files import atomic_dir


def config(arch, tokenizer) -> LlamaConfig:
    """The LlamaConfig of an architecture section (boundary.config.MiniatureModel)."""
    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=arch.hidden, intermediate_size=arch.ffn,
        num_hidden_layers=arch.layers, num_attention_heads=arch.heads, num_key_value_heads=arch.heads,
        max_position_embeddings=arch.max_positions, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None, rms_norm_eps=1e-5, initializer_range=0.02,
    )


def fresh(arch, tokenizer, seed: int) -> LlamaForCausalLM:
    """A newly initialized model, its weights a function of `seed` only."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config(arch, tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def save(model, tokenizer, folder: Path, meta: dict) -> None:
    """Write a checkpoint folder whole (to a temporary sibling, then renamed into place).

    `meta` (what built it: params, steps, metrics) goes to `miniature.json` beside the weights.
    """
    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "miniature.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))

    atomic_dir(folder, write)


def load(folder: Path):
    """(model, tokenizer) of a checkpoint folder, model in eval mode on the CPU."""
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.eval()
    return model, AutoTokenizer.from_pretrained(folder)
