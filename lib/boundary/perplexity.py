"""Perplexity of one model's responses under another model: PPL_m(Y | x).

    PPL_m(Y | x) = exp( -1/|Y| * sum_t log p_m(y_t | x, y_<t) )

over the response tokens only (the prompt x is conditioned on, never scored), with x rendered by
the same template as at sampling. The paper (Fig. 6) uses it to ask whether RL's answers were
already likely under the base model: PPL_Base(Y_RL) close to PPL_Base(Y_Base) means RL samples
from inside the base model's distribution.

What is scored is exactly what was sampled: a stored sample's `token_ids` (up to the token that
completed a stop string, the stop token only where it ended the sample); stores written before that
column re-tokenize the text, with a warning (`scored_tokens`). One path, `logprobs_of_samples`,
serves text and image prompts, the study (`score`) and single stores (`of_samples`), on two engines:
- `transformers` (CPU/GPU): pairs batched by tokens (rows x padded width <= `BATCH_TOKENS`), left-
  padded with explicit position ids, so padding changes no logit; only the hidden states that
  predict response tokens are projected to the vocabulary, `VOCAB_CHUNK` positions at a time,
  keeping the chosen logit and a logsumexp (a 16k-token response never builds a tokens x vocab
  log-softmax).
- `vllm` (its own process, boundary.sampling.engine): `prompt_logprobs` of prompt + response read at
  the response positions, prefix caching off (cached prefixes make prompt logprobs depend on
  request order), a bounded `max_num_batched_tokens`, pairs sent in bounded batches and converted
  to arrays at once, responses cut to the context window (`trim`).

Vision-language models: `extra` gives each pair its own model inputs beside the token ids (a
LLaVA's `pixel_values` [1, 3, S, S]), concatenated per batch, and the prompts hold the image
placeholder already expanded (the processor's input_ids), so PPL_base(Y_RL | image, question)
is computed like the text case (transformers: only models with 1-D position ids, not Qwen2-VL's
mRoPE; vLLM expands the placeholder itself and scores any model it serves).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from boundary import quiet
from boundary.passk.compare import bootstrap_indices, percentile_interval
from boundary.sampling.pairs import check_pairs, trim


# Tokens (rows x padded width) per transformers forward pass: the activations of one batch. A pair
# longer than this is scored alone. With the vocabulary projected VOCAB_CHUNK positions at a time,
# memory no longer grows with tokens x vocabulary (a 16k-token response of a 150k-word vocabulary
# would need 10 GB of float32 logits at once).
BATCH_TOKENS = 16384
VOCAB_CHUNK = 1024  # positions projected to the vocabulary at once (VOCAB_CHUNK x vocab float32 logits)


def _batches(order: Sequence[int], lengths: Sequence[int], batch_size: int, batch_tokens: int) -> list[list[int]]:
    """Consecutive runs of `order` (pairs sorted by length) holding at most `batch_size` pairs and
    `batch_tokens` padded tokens (rows x the longest), a longer pair alone."""
    out, cur, width = [], [], 0
    for i in order:
        w = max(width, lengths[i])
        if cur and (len(cur) + 1 > batch_size or (len(cur) + 1) * w > batch_tokens):
            out.append(cur)
            cur, w = [], lengths[i]
        cur.append(i)
        width = w
    return out + ([cur] if cur else [])


def _head(model):
    """(the model without its vocabulary projection, the projection, the final logit soft-cap or None):
    the parts `token_logprobs` runs separately so the logits are never held for all positions."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if getattr(config, "logit_scale", None) not in (None, 1, 1.0):
        raise NotImplementedError(f"{type(model).__name__}: scaled logits (logit_scale) are not scored here")
    return getattr(model, model.base_model_prefix), model.get_output_embeddings(), getattr(config, "final_logit_softcapping", None)


@torch.no_grad()
def token_logprobs(model, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                   batch_size: int = 16, pad_token_id: int = 0, padding_side: str = "left",
                   progress: bool = False, extra: Sequence[dict] | None = None,
                   batch_tokens: int = BATCH_TOKENS, vocab_chunk: int = VOCAB_CHUNK) -> list[np.ndarray]:
    """log p(y_t | x, y_<t) for every response token of every (prompt, response) pair.

    Pairs are batched in order of length (less padding) by tokens: at most `batch_size` pairs and
    `batch_tokens` padded tokens per forward pass; results returned in input order. Only the hidden
    states that predict response tokens are projected to the vocabulary, `vocab_chunk` positions at
    a time, keeping the chosen token's logit and the logsumexp of each (never a full
    positions x vocabulary log-softmax). `padding_side` exists to show (and test) that padding does
    not change the result. extra: per pair, further model inputs (tensors [1, ...], e.g. pixel_values).
    """
    check_pairs(prompts, responses, extra)
    model.eval()
    base, head, softcap = _head(model)
    device = next(model.parameters()).device
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses)]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    out: list[np.ndarray | None] = [None] * len(prompts)
    for idx in tqdm(_batches(order, lengths, batch_size, batch_tokens), desc="perplexity", unit="batch",
                    **quiet(progress)):
        seqs = [list(prompts[i]) + list(responses[i]) for i in idx]
        width = max(map(len, seqs))
        ids = torch.full((len(idx), width), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, s in enumerate(seqs):
            span = slice(width - len(s), width) if padding_side == "left" else slice(0, len(s))
            ids[row, span] = torch.tensor(s)
            mask[row, span] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        inputs = {} if extra is None else {k: torch.cat([extra[i][k] for i in idx]).to(device) for k in extra[0]}
        hidden = base(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                      **inputs).last_hidden_state
        rows, targets = [], []
        for row, i in enumerate(idx):
            r = len(responses[i])
            end = width if padding_side == "left" else len(seqs[row])  # one past the last real token
            rows.append(hidden[row, end - r - 1:end - 1])  # the hidden states predicting the response tokens
            targets.append(torch.as_tensor(responses[i], device=hidden.device))
        h, target = torch.cat(rows), torch.cat(targets)
        del hidden
        chosen = []
        for c in range(0, len(h), vocab_chunk):
            logits = head(h[c:c + vocab_chunk]).float()
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            chosen.append(logits.gather(1, target[c:c + vocab_chunk, None])[:, 0] - torch.logsumexp(logits, -1))
        flat = torch.cat(chosen).cpu().numpy().astype(np.float64)
        for i, part in zip(idx, np.split(flat, np.cumsum([len(responses[i]) for i in idx])[:-1])):
            out[i] = part
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
    columns benchmark, problem, group, sample, text, finish_reason, token_ids."""
    from boundary import runs

    n, limit = cfg.perplexity.responses, cfg.perplexity.problems
    df = runs.samples(cfg, ["problem_id", "sample", "text", "finish_reason", "token_ids"], models=[model], n=n)
    if df.empty:
        raise RuntimeError(f"no stored responses of {model.label!r} on {[b.name for b in cfg.benchmarks]}: run notebook 01 "
                           "first (it samples the RL checkpoints on the first benchmark; for another: "
                           "perplexity.sample_checkpoints(cfg, benchmark), then perplexity.grade_checkpoints)")
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
    return df[["benchmark", "problem", "group", "sample", "text", "finish_reason", "token_ids"]].reset_index(drop=True)


def score(cfg, pairs: Sequence[tuple], progress: bool = True) -> pd.DataFrame:
    """PPL_scorer(Y_responder | x) of the study's responses for each (scorer, responder) pair of
    config.Models; each scorer is loaded once, and its engine is gone before the next one loads.
    One row per scored response: condition ("PPL_<scorer>(Y_<responder>)"), scorer, responder,
    benchmark, problem, group, sample, tokens (scored), ppl.

    The prompt x is rendered with the responder's template under the scorer, as at sampling, and
    the response is the sampled tokens (`scored_tokens`), through `logprobs_of_samples` (one path
    for text and image prompts); with transformers, or vLLM when the experiment samples with vllm.
    """
    from boundary import runs

    frames = []
    by_scorer: dict[str, list] = {}
    for scorer, responder in pairs:
        by_scorer.setdefault(scorer.label, []).append((scorer, responder))
    probs = {p.id: p for b in cfg.benchmarks for p in runs.problems(b)}
    for todo in by_scorer.values():
        engine = _engine(cfg, todo[0][0])
        try:
            for scorer, responder in todo:
                df = responses(cfg, responder)
                lp = logprobs_of_samples(engine, responder.template, probs, df["problem"].tolist(), df,
                                         batch_size=cfg.perplexity.batch_size, progress=progress)
                frames.append(df.drop(columns=["text", "finish_reason", "token_ids"]).assign(
                    condition=f"PPL_{scorer.label}(Y_{responder.label})", scorer=scorer.label,
                    responder=responder.label, tokens=[0 if x is None else len(x) for x in lp],
                    ppl=[np.nan if x is None or not len(x) else float(np.exp(-np.mean(x))) for x in lp]))
        finally:
            close = getattr(engine, "close", None)  # a vLLM engine's process ends here
            if close is not None:
                close()
            del engine  # a transformers model is freed with its last reference
    cols = ["condition", "scorer", "responder", "benchmark", "problem", "group", "sample", "tokens", "ppl"]
    if not frames:  # no pairs (e.g. no RL checkpoints named): an empty table, not a failed concat
        return pd.DataFrame({c: pd.Series(dtype="float64" if c == "ppl" else "object") for c in cols})
    return pd.concat(frames, ignore_index=True)[cols]


# Tokens a vLLM scoring engine computes per step (vLLM's max_num_batched_tokens): bounds the memory of
# prompt logprobs, which vLLM computes outside its profiled budget; longer sequences are prefilled in chunks.
VLLM_SCORE_BATCHED_TOKENS = 8192


def _engine(cfg, model, **kwargs):
    """The scoring engine of `model`, as the experiment samples: a TransformersBackend (device, dtype,
    padding id), or a VLLMBackend (its own process) with prefix caching off (cached prefixes make
    prompt logprobs depend on request order) and a bounded `max_num_batched_tokens`.
    kwargs: further backend arguments (e.g. dtype)."""
    from boundary.sampling import backends

    if model.max_model_len is not None:  # the window the model sampled in (params' models[].max_model_len)
        kwargs.setdefault("max_model_len", model.max_model_len)
    if cfg.sampling.backend == "vllm":
        return backends.VLLMBackend(model.path, model.revision, tensor_parallel_size=cfg.sampling.tensor_parallel_size,
                                    kv_cache_bytes=cfg.sampling.kv_cache_bytes, enable_prefix_caching=False,
                                    max_num_batched_tokens=VLLM_SCORE_BATCHED_TOKENS, enable_chunked_prefill=True,
                                    **kwargs)
    return backends.TransformersBackend(model.path, model.revision, **kwargs)


def scored_tokens(samples: pd.DataFrame, tokenizer, stop_id: int) -> list[list[int]]:
    """The tokens to score of each stored sample (rows of a store: text, finish_reason, token_ids).

    A sample's `token_ids` are exactly what was sampled: up to the token that completed a stop
    string, and the stop token only where it ended the sample. They are used when the store has
    them and they are this tokenizer's (their decoded text begins with the stored text; a scorer
    with another vocabulary fails that). Otherwise, as before the column existed, the text is
    re-tokenized and `stop_id` appended when the sample stopped, with a warning counting those rows:
    a re-tokenization may differ from the sampled tokens, and a stop string's sample gets a stop
    token it never sampled.
    """
    import warnings

    n = len(samples)
    ids = samples["token_ids"].tolist() if "token_ids" in samples else [None] * n
    reasons = samples["finish_reason"].tolist() if "finish_reason" in samples else [None] * n
    out, fallback, foreign = [], 0, 0
    for text, stored, reason in zip(samples["text"].tolist(), ids, reasons):
        if stored is not None:
            stored = [int(t) for t in stored]
            if tokenizer.decode(stored, skip_special_tokens=True).startswith(text):
                out.append(stored)
                continue
            foreign += 1
        fallback += 1
        out.append(tokenizer(text, add_special_tokens=False)["input_ids"] + ([stop_id] if reason == "stop" else []))
    if fallback:
        warnings.warn(f"perplexity: {fallback} of {n} samples re-tokenized from their text "
                      + (f"({foreign} with token ids of another tokenizer) " if foreign else "(no stored token ids: an older store) ")
                      + "instead of scoring their sampled token ids", stacklevel=2)
    return out


def logprobs_of_samples(scorer, template: str, problems: dict, problem_ids: Sequence[str], samples: pd.DataFrame,
                        batch_size: int = 16, progress: bool = False) -> list[np.ndarray | None]:
    """log p(y_t | x, y_<t) of each stored sample's tokens under `scorer`: the one scoring path of text
    and image prompts (`score`, `of_samples`).

    scorer: a TransformersBackend or VLLMBackend; problems: id -> boundary.tasks.Problem; problem_ids:
    the problem of each row of `samples` (text, finish_reason, token_ids as in the store). x is the
    problem rendered with `template` (by the processor for images) and tokenized as at sampling; the
    response is `scored_tokens`, cut to the scorer's context window (`trim`). None for a sample with
    no token to score (counted by the caller, never a number).
    """
    from boundary import tasks
    from boundary.sampling import backends

    missing = sorted(set(problem_ids) - set(problems))
    if missing:
        raise ValueError(f"samples of problems not in the benchmark: {missing[:5]}")
    renderer = scorer.processor or scorer.tokenizer
    use_vllm = isinstance(scorer, backends.VLLMBackend)
    encoded = {}  # problem id -> (prompt ids, extra inputs or image bytes or None), one render per problem
    for pid in dict.fromkeys(problem_ids):
        text = tasks.render(template, problems[pid], renderer)
        if scorer.vision and not use_vllm:
            encoded[pid] = scorer.encode_image(text, problems[pid].image, pid)  # placeholder expanded, pixel values
        else:
            encoded[pid] = (backends.encode(scorer.tokenizer, text), problems[pid].image if scorer.vision else None)
    resp = scored_tokens(samples, scorer.tokenizer, backends.stop_token_ids(scorer.tokenizer)[0])
    rows = [i for i, r in enumerate(resp) if r]
    prompts = [encoded[problem_ids[i]][0] for i in rows]
    if use_vllm:
        lp = scorer.prompt_logprobs(prompts, [resp[i] for i in rows], [encoded[problem_ids[i]][1] for i in rows])
    else:
        window = getattr(scorer, "window", None)  # max_model_len, else the model's positions
        lp = token_logprobs(scorer.model, prompts, trim(prompts, [resp[i] for i in rows], window),
                            batch_size=batch_size, pad_token_id=scorer.pad_id, progress=progress,
                            extra=[encoded[problem_ids[i]][1] for i in rows] if scorer.vision else None)
    out: list[np.ndarray | None] = [None] * len(samples)
    for i, x in zip(rows, lp):
        out[i] = x
    return out


def medians(scores: pd.DataFrame, by: Sequence[str] = ("condition",), B: int = 1000, ci: float = 0.95,
            seed: int = 0) -> pd.DataFrame:
    """Median perplexity per `by` group with a bootstrap interval over problems.

    A cluster bootstrap (passk's resamples and percentile interval, the project's one bootstrap): a
    group's problems are resampled with all their responses. Every group draws from the same seed,
    so groups over the same problems (the conditions of one problem group) see the same resampled
    problems: their intervals are paired. Columns: *by, problems, responses, median, ci_low, ci_high.
    """
    by = list(by)
    rows = []
    for key, part in scores.groupby(by, sort=False):
        per = [np.asarray(v) for _, v in part.groupby("problem", sort=True)["ppl"]]
        stats = np.array([np.median(np.concatenate([per[i] for i in d])) for d in bootstrap_indices(len(per), B, seed)])
        lo, hi = percentile_interval(stats, ci)
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
    stats = np.array([np.median(np.concatenate([per[b][i] for i in d])) - np.median(np.concatenate([per[a][i] for i in d]))
                      for d in bootstrap_indices(len(problems), B, seed)])
    lo, hi = percentile_interval(stats, ci)
    return {"a": a, "b": b, "diff": float(parts[b]["ppl"].median() - parts[a]["ppl"].median()),
            "ci_low": float(lo), "ci_high": float(hi)}


# --- the recipes of notebooks 01, 02, 04 and 05 ------------------------------------------------------
def study_benchmark(cfg, benchmark: str | None = None):
    """The experiment narrowed to the benchmark whose responses notebook 04 scores (None: the first)."""
    return cfg.only(benchmark or cfg.benchmarks[0].name)


def trained(cfg, base) -> list:
    """The RL checkpoints along training and the final RL models of `base`'s modality: the responders of
    the trend over training."""
    return checkpoints(cfg) + [m for m in cfg.models if m.role == "rl" and m.modality == base.modality]


def _checkpoint_stage(stage, cfg, benchmark: str | None, progress: bool) -> pd.DataFrame:
    """`stage` (runs.sample or runs.grade) over the RL checkpoints at `perplexity.responses` per problem,
    on the benchmark notebook 04 scores; an empty table when there are none."""
    ckpts = checkpoints(cfg)
    if not ckpts:
        return pd.DataFrame()
    return stage(study_benchmark(cfg, benchmark), progress=progress, models=ckpts, n=cfg.perplexity.responses)


def sample_checkpoints(cfg, benchmark: str | None = None, progress: bool = True) -> pd.DataFrame:
    """The sampling stage's share of notebook 04 (notebook 01 calls it): the RL checkpoints' responses on
    the benchmark it scores; statistics as `runs.sample`."""
    from boundary import runs

    return _checkpoint_stage(runs.sample, cfg, benchmark, progress)


def grade_checkpoints(cfg, benchmark: str | None = None, progress: bool = True) -> pd.DataFrame:
    """The grading stage's share (notebook 02 calls it): the checkpoints' samples graded, their verdicts
    cached beside their stores, where `trend` reads them."""
    from boundary import runs

    return _checkpoint_stage(runs.grade, cfg, benchmark, progress)


def trend(cfg, scores: pd.DataFrame, base, rl, B: int = 1000, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Median PPL_base of the responses of every trained model (`trained`) with its interval, its RL step and
    its pass@1 on the scored responses; `scores` already holds PPL_base(Y_base) and PPL_base(Y_rl), which are
    reused. `cfg` is narrowed to the scored benchmark. Columns: responder, problems, responses, median,
    ci_low, ci_high, step, pass_at_1, run (the responder without its -step suffix)."""
    from boundary import runs

    models = trained(cfg, base)
    more = score(cfg, [(base, m) for m in models if m.label != rl.label], progress=progress)
    kept = scores[scores["condition"].isin([f"PPL_{base.label}(Y_{base.label})", f"PPL_{base.label}(Y_{rl.label})"])]
    out = medians(pd.concat([kept, more], ignore_index=True), by=["responder"], B=B, seed=seed)
    model_of = {m.label: m for m in [base] + models}
    out["step"] = [step_of(cfg, model_of[r]) for r in out["responder"]]
    graded = runs.verdicts(cfg, models=[base] + models, n=cfg.perplexity.responses)
    out["pass_at_1"] = out["responder"].map(graded.groupby("model")["correct"].mean())
    out["run"] = out["responder"].str.replace(r"-step\d+$", "", regex=True)
    return out


def trend_lines(t: pd.DataFrame) -> pd.DataFrame:
    """`trend`'s rows as the figure draws them: each run's steps, each starting from the base (step 0)."""
    runs_ = t.loc[t["step"] > 0, "run"].unique()
    return pd.concat([t[t["step"] > 0]] + [t[t["step"] == 0].assign(run=r) for r in runs_], ignore_index=True)


def finding(scores: pd.DataFrame, base: str, rl: str, B: int = 1000, seed: int = 0) -> str:
    """Notebook 04's reading: every response source's median PPL_base against the base's own, with
    intervals, then whether RL's answers left the base's distribution (from the interval of the difference)."""
    own = f"PPL_{base}(Y_{base})"
    lines, diffs = [], {}
    for other in dict.fromkeys(scores["condition"]):
        if other.startswith(f"PPL_{base}(") and other != own:
            d = diffs[other] = median_difference(scores, own, other, B=B, seed=seed)
            lines.append(f"median {other} - {own} = {d['diff']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]")
    d = diffs.get(f"PPL_{base}(Y_{rl})") or median_difference(scores, own, f"PPL_{base}(Y_{rl})", B=B, seed=seed)
    if d["ci_high"] < 0:
        lines.append(f"{rl}'s answers are more likely under {base} than {base}'s own: RL samples from inside the "
                     "base distribution, sharpened.")
    elif d["ci_low"] > 0:
        lines.append(f"{rl}'s answers are less likely under {base} than its own: RL moved outside the base distribution.")
    else:
        lines.append(f"{rl}'s answers are as likely under {base} as its own (the interval contains 0): no sign "
                     "that RL left the base distribution.")
    return "\n".join(lines)


def of_pair(cfg, benchmark: str, ref, treated, responses: int, progress: bool = False) -> pd.DataFrame | None:
    """Notebook 05: PPL_ref of both models' first `responses` stored samples per problem of `benchmark`, scored
    with transformers (the `of_samples` path; columns responses (whose samples), problem_id, sample, ..., ppl);
    None, with the reason printed, where transformers cannot score `ref` (Qwen2-VL's 3-D positions)."""
    from boundary import runs
    from boundary.sampling.backends import TransformersBackend

    try:
        scorer = TransformersBackend(ref.path, ref.revision)
    except NotImplementedError as e:
        print(f"perplexity skipped: {e}")
        return None
    stored = runs.samples(cfg, ["problem_id", "sample", "text", "finish_reason", "token_ids"])
    stored = stored[(stored["benchmark"] == benchmark) & stored["model"].isin([ref.label, treated.label])
                    & (stored["sample"] < responses)].reset_index(drop=True)
    probs = runs.problems(next(b for b in cfg.benchmarks if b.name == benchmark))
    return of_samples(scorer, ref.template, probs, stored, progress=progress).rename(columns={"model": "responses"})


def summary(scored: pd.DataFrame, scorer: str) -> pd.DataFrame:
    """Per response source of `of_pair`'s table: scored, empty (no token to score: counted, never a
    number), median and mean perplexity; rows named PPL_<scorer>(Y_<source>)."""
    out = scored.groupby("responses", sort=False)["ppl"].agg(
        scored="count", empty=lambda s: int(s.isna().sum()), median="median", mean="mean")
    out.index = [f"PPL_{scorer}(Y_{m})" for m in out.index]
    return out


def of_samples(scorer, template: str, problems, samples, batch_size: int = 16, progress: bool = False):
    """PPL_scorer(Y | x) of stored samples: `samples` (columns problem_id, sample, text, and as the
    store has them finish_reason, token_ids) answered the `problems` (boundary.tasks.Problem)
    prompted with `template`; returns `samples` with a `ppl` column.

    scorer: a TransformersBackend or VLLMBackend (text or vision-language), scoring through
    `logprobs_of_samples`, the same path as `score`. A sample with no token to score has `ppl` NaN
    (counted by the caller, never a number).
    """
    by_id = {p.id: p for p in problems}
    lp = logprobs_of_samples(scorer, template, by_id, samples["problem_id"].tolist(), samples,
                             batch_size=batch_size, progress=progress)
    return samples.assign(ppl=[np.nan if x is None else float(np.exp(-np.mean(x))) for x in lp])
