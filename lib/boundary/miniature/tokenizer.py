"""The miniature's tokenizer: one token per character, as a `PreTrainedTokenizerFast` with a chat template.

A character vocabulary keeps every arithmetic step visible to the model (no multi-digit tokens
that hide carries) and makes the tokenizer exactly invertible on the task's alphabet. It is a
`tokenizers` WordLevel model behind a pre-tokenizer that isolates each character and a Fuse
decoder that joins them back, so `decode(encode(s)) == s`. The chat template frames a question
as `<user>question<assistant>` and ends an assistant turn with `<eos>`, so prompts go through
`apply_chat_template` exactly as they do for real chat models.
"""
from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIALS = ["<pad>", "<eos>", "<unk>", "<user>", "<assistant>"]  # ids 0..4, in this order
ALPHABET = "0123456789+-*^=\\boxed{} "  # every character of questions and traces (and a space)
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}<user>{{ m['content'] }}"
    "{% elif m['role'] == 'assistant' %}<assistant>{{ m['content'] }}<eos>"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def build() -> PreTrainedTokenizerFast:
    """The tokenizer (deterministic: the vocabulary is SPECIALS then ALPHABET in order)."""
    chars = list(dict.fromkeys(ALPHABET))
    vocab = {t: i for i, t in enumerate(SPECIALS + chars)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>",
        additional_special_tokens=["<user>", "<assistant>"], clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def prompt_ids(tokenizer, question: str) -> list[int]:
    """Token ids of the generation prompt for a question, through the chat template."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                         add_generation_prompt=True)
    return tokenizer.encode(text, add_special_tokens=False)


def example_ids(tokenizer, question: str, response: str) -> tuple[list[int], int]:
    """Token ids of a whole (question, response) turn and the length of its prompt part."""
    prompt = prompt_ids(tokenizer, question)
    return prompt + tokenizer.encode(response, add_special_tokens=False) + [tokenizer.eos_token_id], len(prompt)
