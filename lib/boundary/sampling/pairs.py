"""Prompt/response token pairs to score: their validation and their cut to a model's window, shared
by the transformers scorer (boundary.perplexity) and vLLM's prompt logprobs (the vLLM backend), so
both score exactly the same tokens.
"""
from __future__ import annotations

from collections.abc import Sequence


def check_pairs(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], extra=None) -> None:
    """Equal numbers of non-empty prompts and responses (and of `extra` model inputs, all alike); a
    ValueError naming the first bad pair."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if extra is not None:
        if len(extra) != len(prompts):
            raise ValueError(f"extra has {len(extra)} entries for {len(prompts)} prompts")
        names = {tuple(sorted(e)) for e in extra}
        if len(names) > 1:
            raise ValueError(f"extra: every pair needs the same model inputs, got {sorted(names)}")
    for i, (p, r) in enumerate(zip(prompts, responses)):
        if len(p) == 0 or len(r) == 0:
            raise ValueError(f"pair {i}: empty {'prompt' if len(p) == 0 else 'response'}; nothing to condition on or score")


def trim(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], window: int | None,
         spare: int = 0) -> list[list[int]]:
    """The responses cut so that prompt + response + `spare` fits `window` positions (None: no window).
    A prompt that leaves no room is an error naming the pair."""
    if window is None:
        return [list(r) for r in responses]
    out = []
    for i, (p, r) in enumerate(zip(prompts, responses)):
        room = window - spare - len(p)
        if room < 1:
            raise ValueError(f"pair {i}: a prompt of {len(p)} tokens leaves no room to score in a window of {window}")
        out.append(list(r)[:room])
    return out
