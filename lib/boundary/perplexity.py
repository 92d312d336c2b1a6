"""Perplexity of one model's responses under another model: PPL_m(Y | x).

    PPL_m(Y | x) = exp( -1/|Y| * sum_t log p_m(y_t | x, y_<t) )

over the response tokens only (the prompt x is conditioned on, never scored), with x rendered by
the same template as at sampling. The paper (Fig. 6) uses it to ask whether RL's answers were
already likely under the base model: PPL_Base(Y_RL) close to PPL_Base(Y_Base) means RL samples
from inside the base model's distribution.

Two paths:
- `transformers` (CPU/GPU): batches are left-padded with explicit position ids, so padding changes
  no logit, and only the last `max response length` positions are projected to the vocabulary
  (`logits_to_keep`), which keeps memory at batch x response x vocab even for long prompts.
- `vllm` (GPU): `prompt_logprobs` of prompt+response, read at the response positions.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from boundary import quiet


def _check(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]) -> None:
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    for i, (p, r) in enumerate(zip(prompts, responses)):
        if len(p) == 0 or len(r) == 0:
            raise ValueError(f"pair {i}: empty {'prompt' if len(p) == 0 else 'response'}; nothing to condition on or score")


@torch.no_grad()
def token_logprobs(model, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                   batch_size: int = 16, pad_token_id: int = 0, padding_side: str = "left",
                   progress: bool = False) -> list[np.ndarray]:
    """log p(y_t | x, y_<t) for every response token of every (prompt, response) pair.

    Pairs are batched in order of length (less padding), results returned in input order.
    `padding_side` exists to show (and test) that padding does not change the result.
    """
    _check(prompts, responses)
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(responses[i]))
    out: list[np.ndarray | None] = [None] * len(prompts)
    for start in tqdm(range(0, len(order), batch_size), desc="perplexity", unit="batch", **quiet(progress)):
        idx = order[start:start + batch_size]
        seqs = [list(prompts[i]) + list(responses[i]) for i in idx]
        width = max(map(len, seqs))
        ids = torch.full((len(idx), width), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, s in enumerate(seqs):
            span = slice(width - len(s), width) if padding_side == "left" else slice(0, len(s))
            ids[row, span] = torch.tensor(s)
            mask[row, span] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        longest = max(len(responses[i]) for i in idx)
        # Positions whose logits predict response tokens; with left padding they are the last ones.
        keep = longest + 1 if padding_side == "left" else width
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                       logits_to_keep=keep).logits.float()
        logp = torch.log_softmax(logits, dim=-1)
        for row, i in enumerate(idx):
            r = len(responses[i])
            end = width if padding_side == "left" else len(seqs[row])  # one past the last real token
            first = keep - (width - end) - r - 1  # logit row predicting the first response token
            pred = logp[row, first:first + r]
            target = torch.tensor(responses[i], device=pred.device)
            out[i] = pred.gather(1, target[:, None])[:, 0].cpu().numpy().astype(np.float64)
    return out  # type: ignore[return-value]


def from_logprobs(logprobs: Sequence[np.ndarray]) -> np.ndarray:
    """Per-response perplexity exp(-mean log p) from per-token log-probabilities."""
    return np.array([float(np.exp(-np.mean(lp))) for lp in logprobs])


def perplexity(model, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
               batch_size: int = 16, pad_token_id: int = 0, progress: bool = False) -> np.ndarray:
    """PPL_model(response | prompt) for each pair, through transformers (CPU or GPU)."""
    return from_logprobs(token_logprobs(model, prompts, responses, batch_size, pad_token_id, progress=progress))


def vllm_token_logprobs(llm, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """The same log-probabilities through vLLM (GPU): prompt_logprobs of prompt+response.

    `llm` is a `vllm.LLM`. vLLM reports, for each position of the prompt after the first, the
    log-probability of the token actually there (plus the top `prompt_logprobs` others), which is
    exactly log p(y_t | x, y_<t) at the response positions. One token is generated and ignored.
    """
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    _check(prompts, responses)
    params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
    requests = [TokensPrompt(prompt_token_ids=list(p) + list(r)) for p, r in zip(prompts, responses)]
    outputs = llm.generate(requests, params, use_tqdm=False)
    result = []
    for p, r, o in zip(prompts, responses, outputs):
        per_position = o.prompt_logprobs[len(p):]  # entries for the response tokens
        result.append(np.array([pos[tok].logprob for pos, tok in zip(per_position, r)], dtype=np.float64))
    return result
