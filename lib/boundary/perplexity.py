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

Vision-language models: `extra` gives each pair its own model inputs beside the token ids (a
LLaVA's `pixel_values` [1, 3, S, S]), concatenated per batch, and the prompts hold the image
placeholder already expanded (the processor's input_ids), so PPL_base(Y_RL | image, question)
is computed like the text case. Only models with 1-D position ids (not Qwen2-VL's mRoPE).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from boundary import quiet


def _check(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], extra=None) -> None:
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


@torch.no_grad()
def token_logprobs(model, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                   batch_size: int = 16, pad_token_id: int = 0, padding_side: str = "left",
                   progress: bool = False, extra: Sequence[dict] | None = None) -> list[np.ndarray]:
    """log p(y_t | x, y_<t) for every response token of every (prompt, response) pair.

    Pairs are batched in order of length (less padding), results returned in input order.
    `padding_side` exists to show (and test) that padding does not change the result.
    extra: per pair, further model inputs (tensors [1, ...], e.g. pixel_values), or None.
    """
    _check(prompts, responses, extra)
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
        inputs = {} if extra is None else {k: torch.cat([extra[i][k] for i in idx]).to(device) for k in extra[0]}
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                       logits_to_keep=keep, **inputs).logits.float()
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
               batch_size: int = 16, pad_token_id: int = 0, progress: bool = False,
               extra: Sequence[dict] | None = None) -> np.ndarray:
    """PPL_model(response | prompt) for each pair, through transformers (CPU or GPU); extra as token_logprobs."""
    return from_logprobs(token_logprobs(model, prompts, responses, batch_size, pad_token_id, progress=progress,
                                        extra=extra))


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


def of_samples(scorer, template: str, problems, samples, batch_size: int = 16, progress: bool = False):
    """PPL_scorer(Y | x) of stored samples: `samples` (columns problem_id, sample, text) answered the
    `problems` (boundary.tasks.Problem) prompted with `template`; returns `samples` with a `ppl` column.

    scorer: a boundary.sampling.backends.TransformersBackend (text or vision-language); its model
    scores, its tokenizer re-tokenizes the response text, and for visual problems its processor
    renders the prompt with the image (expanded placeholder, pixel_values as `extra`). An empty
    response has no tokens to score: its `ppl` is NaN (counted by the caller, never a number).
    """
    from boundary import tasks
    from boundary.sampling.backends import encode

    by_id = {p.id: p for p in problems}
    missing = sorted(set(samples["problem_id"]) - set(by_id))
    if missing:
        raise ValueError(f"samples of problems not in the benchmark: {missing[:5]}")
    renderer = scorer.processor or scorer.tokenizer
    encoded = {}  # problem id -> (prompt ids, extra inputs or None), one processor call per problem
    for pid in dict.fromkeys(samples["problem_id"]):
        text = tasks.render(template, by_id[pid], renderer)
        if scorer.vision:
            encoded[pid] = scorer.encode_image(text, by_id[pid].image, pid)
        else:
            encoded[pid] = (encode(scorer.tokenizer, text), None)
    rows = [i for i, t in enumerate(samples["text"]) if t]
    responses = [scorer.tokenizer(samples["text"].iloc[i], add_special_tokens=False)["input_ids"] for i in rows]
    pids = [samples["problem_id"].iloc[i] for i in rows]
    extra = [encoded[p][1] for p in pids] if scorer.vision else None
    ppl = perplexity(scorer.model, [encoded[p][0] for p in pids], responses, batch_size=batch_size,
                     pad_token_id=scorer.pad_id, progress=progress, extra=extra)
    out = np.full(len(samples), np.nan)
    out[rows] = ppl
    return samples.assign(ppl=out)
