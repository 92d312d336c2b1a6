"""Tiny randomly initialised Llama models for the sampling tests: built in well under a second.

`initializer_range` is large so the next-token distributions are peaked (max probability ~0.3-0.5)
rather than near uniform, which makes stop tokens, top-p cut-offs and distribution tests meaningful.
Importing this module sets torch to one thread: such tiny models run several times faster so, and
the test machine is shared.
"""
import torch
from transformers import LlamaConfig, LlamaForCausalLM

torch.set_num_threads(1)


def tiny_llama(seed: int = 0, vocab: int = 40, hidden: int = 64, layers: int = 2, init: float = 0.5) -> LlamaForCausalLM:
    """A random LlamaForCausalLM (float32, eval mode) with `vocab` tokens; the same for the same seed."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      initializer_range=init, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return LlamaForCausalLM(cfg).eval()
