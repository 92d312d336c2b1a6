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
import pandas as pd
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


# --- the study of notebook 04: whose responses, scored under whom --------------------------------
def checkpoints(cfg) -> list:
    """The RL checkpoints of the perplexity-over-training study (config.Model, each with `step`):
    params' `perplexity.checkpoints`, else the miniature's `rl-seed<s>-step<t>` folders, else none."""
    from boundary.config import Model

    if cfg.perplexity.checkpoints:
        return list(cfg.perplexity.checkpoints)
    mini = cfg.miniature
    rl = [m for m in cfg.models if m.role == "rl" and m.modality == "text"]  # the miniature's text RL runs
    if mini is None or not rl:
        return []
    return [Model(label=f"rl-seed{s}-step{t}", role="rl", path=f"{mini.out}/rl-seed{s}-step{t}",
                  template=rl[0].template, step=t)
            for s in mini.rl.seeds for t in mini.rl.checkpoints]


def step_of(cfg, model) -> int | None:
    """The RL training step of `model`: its `step`, or for the miniature's final RL models the
    number of RL steps, 0 for a base model, else None."""
    if model.step is not None:
        return model.step
    if model.role == "base":
        return 0
    if model.role == "rl" and cfg.miniature is not None:
        return cfg.miniature.rl.steps
    return None


def group_of(problem) -> str:
    """The problem group of the figures: the miniature's difficulty, MATH's level, else the benchmark."""
    for key, name in (("difficulty", "d={}"), ("level", "level {}")):
        if problem.meta.get(key) is not None:
            return name.format(problem.meta[key])
    return problem.benchmark


def responses(cfg, model) -> pd.DataFrame:
    """The stored responses of `model` that the study scores: sample indices below
    `perplexity.responses`, on the first `perplexity.problems` problems of each benchmark;
    columns benchmark, problem, group, sample, text, finish_reason."""
    from boundary import runs

    n, limit = cfg.perplexity.responses, cfg.perplexity.problems
    df = runs.samples(cfg, ["problem_id", "sample", "text", "finish_reason"], models=[model], n=n)
    if df.empty:
        raise RuntimeError(f"no stored responses of {model.label!r}: run notebook 01 (or runs.sample) first")
    groups, keep = {}, set()
    for bench in cfg.benchmarks:
        probs = runs.problems(bench)
        keep |= {p.id for p in probs[:limit]}
        groups.update({p.id: group_of(p) for p in probs})
    df = df.rename(columns={"problem_id": "problem"})
    df = df[df["problem"].isin(keep)].copy()
    short = df.groupby("problem")["sample"].size()
    if (short < n).any():
        raise RuntimeError(f"{model.label!r}: {int((short < n).sum())} problems have fewer than {n} stored responses "
                           f"(e.g. {short[short < n].index[0]}); sample them first")
    df["group"] = df["problem"].map(groups)
    return df[["benchmark", "problem", "group", "sample", "text", "finish_reason"]].reset_index(drop=True)


def score(cfg, pairs: Sequence[tuple], progress: bool = True) -> pd.DataFrame:
    """PPL_scorer(Y_responder | x) of the study's responses for each (scorer, responder) pair of
    config.Models; each scorer is loaded once. One row per scored response: condition
    ("PPL_<scorer>(Y_<responder>)"), scorer, responder, benchmark, problem, group, sample, tokens, ppl.

    The prompt x is rendered with the responder's template under the scorer's tokenizer, as at
    sampling (boundary.sampling.backends.encode); the response is the stored text, plus the
    end-of-sequence token when the sample stopped (it was generated, so it is scored too).
    Through transformers, or vLLM's prompt_logprobs when the experiment samples with vllm.
    """
    from boundary import runs, tasks
    from boundary.sampling import backends

    frames = []
    by_scorer: dict[str, list] = {}
    for scorer, responder in pairs:
        by_scorer.setdefault(scorer.label, []).append((scorer, responder))
    for todo in by_scorer.values():
        scorer = todo[0][0]
        engine = _engine(cfg, scorer)
        tok = engine["tokenizer"]
        eos = backends.stop_token_ids(tok)[0]
        for _, responder in todo:
            df = responses(cfg, responder)
            probs = {p.id: p for b in cfg.benchmarks for p in runs.problems(b)}
            prompt_of = {pid: backends.encode(tok, tasks.render(responder.template, probs[pid], tok))
                         for pid in df["problem"].unique()}
            prompts = [prompt_of[p] for p in df["problem"]]
            resp = [tok(t, add_special_tokens=False)["input_ids"] + ([eos] if f == "stop" else [])
                    for t, f in zip(df["text"], df["finish_reason"])]
            if engine["llm"] is not None:
                lp = vllm_token_logprobs(engine["llm"], prompts, resp)
            else:
                lp = token_logprobs(engine["model"], prompts, resp, batch_size=cfg.perplexity.batch_size,
                                    pad_token_id=engine["pad"], progress=progress)
            frames.append(df.drop(columns=["text", "finish_reason"]).assign(
                condition=f"PPL_{scorer.label}(Y_{responder.label})", scorer=scorer.label, responder=responder.label,
                tokens=[len(r) for r in resp], ppl=from_logprobs(lp)))
        del engine
    cols = ["condition", "scorer", "responder", "benchmark", "problem", "group", "sample", "tokens", "ppl"]
    return pd.concat(frames, ignore_index=True)[cols]


def _engine(cfg, model) -> dict:
    """The scoring engine of `model`: its tokenizer, and a transformers model or a vLLM LLM."""
    from boundary.sampling import backends

    path = backends.resolve(model.path)
    if cfg.sampling.backend == "vllm":
        import vllm
        llm = vllm.LLM(model=path, revision=model.revision, tensor_parallel_size=cfg.sampling.tensor_parallel_size,
                       enable_prefix_caching=True, seed=0, **backends.vllm_memory_args(cfg.sampling.kv_cache_bytes))
        return {"tokenizer": llm.get_tokenizer(), "llm": llm, "model": None, "pad": 0}
    b = backends.TransformersBackend(model.path, model.revision)  # as at sampling: device, dtype, padding id
    return {"tokenizer": b.tokenizer, "llm": None, "model": b.model, "pad": b.pad_id}


def medians(scores: pd.DataFrame, by: Sequence[str] = ("condition",), B: int = 1000, ci: float = 0.95,
            seed: int = 0) -> pd.DataFrame:
    """Median perplexity per `by` group with a bootstrap interval over problems.

    A cluster bootstrap: a group's problems are resampled with all their responses. Every group
    draws from the same seed, so groups over the same problems (the conditions of one problem
    group) see the same resampled problems: their intervals are paired. Columns: *by, problems,
    responses, median, ci_low, ci_high.
    """
    by = list(by)
    rows = []
    for key, part in scores.groupby(by, sort=False):
        per = [np.asarray(v) for _, v in part.groupby("problem", sort=True)["ppl"]]
        draws = np.random.default_rng(seed).integers(0, len(per), size=(B, len(per)))
        stats = np.array([np.median(np.concatenate([per[i] for i in d])) for d in draws])
        lo, hi = np.quantile(stats, [(1 - ci) / 2, (1 + ci) / 2])
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "problems": len(per), "responses": len(part),
                     "median": float(part["ppl"].median()), "ci_low": float(lo), "ci_high": float(hi)})
    return pd.DataFrame(rows)


def median_difference(scores: pd.DataFrame, a: str, b: str, B: int = 1000, ci: float = 0.95,
                      seed: int = 0) -> dict:
    """Median perplexity of condition `b` minus condition `a`, with a paired cluster-bootstrap
    interval (the same resampled problems for both). The conditions must cover the same problems."""
    parts = {c: scores[scores["condition"] == c] for c in (a, b)}
    sets = {c: set(p["problem"]) for c, p in parts.items()}
    if not sets[a] or sets[a] != sets[b]:
        raise ValueError(f"conditions {a!r} and {b!r} cover different (or no) problems: not a paired comparison")
    problems = sorted(sets[a])
    per = {c: [np.asarray(v) for _, v in p.groupby("problem", sort=True)["ppl"]] for c, p in parts.items()}
    draws = np.random.default_rng(seed).integers(0, len(problems), size=(B, len(problems)))
    stats = np.array([np.median(np.concatenate([per[b][i] for i in d])) - np.median(np.concatenate([per[a][i] for i in d]))
                      for d in draws])
    lo, hi = np.quantile(stats, [(1 - ci) / 2, (1 + ci) / 2])
    return {"a": a, "b": b, "diff": float(parts[b]["ppl"].median() - parts[a]["ppl"].median()),
            "ci_low": float(lo), "ci_high": float(hi)}


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
