"""Batched KV-cache decoding of a Hugging Face causal LM, with per-sample counter-based randomness.

Why not `model.generate()`: for pass@k at large k we draw n samples of the same prompt, and we
must be able to stop, resume and top up a run (n=64, later n=256) and get exactly the samples an
uninterrupted run would have produced. `generate()` draws from one shared torch.Generator, so a
sample depends on everything decoded before it in the same process, and it prefills a prompt once
per sample. Here:

- each prompt is prefilled once (prompts of a batch together, left-padded with `pad_token_id`);
  its KV cache is kept until all its samples have been scheduled (a prompt with n=1024 and
  batch_size=256 is still prefilled once);
- the random number behind token t of sample i of the problem with key K is a hash of
  (seed, K, i, t) (splitmix64, an integer hash: counter-based noise), turned into a token by
  inverse-CDF sampling of the temperature / top-p distribution. No generator state is shared,
  so a sample does not depend on the batch composition, on batch_size, or on what ran before;
- samples in the same state share its computation: the rows (samples) of a batch point to nodes,
  one per distinct (prompt, tokens so far); a step computes each node's logits once, and each row
  draws its own token from its node's distribution with its own uniform. The n rows of a prompt
  start as one node; nodes split when their rows draw different tokens (the new node's keys and
  values copied into a free slot of the buffer) and idle, fed `pad_token_id`, once no row points
  to them, until a quarter of the slots idle and the buffer is compacted. A low-entropy model (a
  trained miniature, greedy decoding) thus computes far fewer than n rows per step;
- the KV cache is written in place into preallocated buffers (transformers' DynamicCache copies
  the whole cache every step); finished rows leave at once and completions are yielded as they
  finish, so memory stays bounded by `batch_size` rows whatever n is;
- the step itself is `boundary.sampling.lean.LeanStep` for Llama-family models (the HF forward's
  per-call overhead dominates small models on CPUs) and the model's own forward otherwise.

Exactness caveat: the noise is independent of the batch, the floating-point logits are not quite:
a different batch shape, padding width or node grouping can change a logit in its last bit. A token flips only if
the uniform lands within that rounding of a CDF boundary (probability ~1e-7 per token in float32);
the tests and benchmarks/resume check that resumed and re-batched runs agree exactly in practice.

Only full-attention KV caches (`DynamicLayer`, e.g. Llama, Qwen2) are supported; other cache
layouts raise a clear error rather than decode wrongly.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from boundary import quiet, stable_seed
from boundary.sampling.lean import LeanStep, unsupported


@dataclass(frozen=True)
class Completion:
    """One finished sample."""

    prompt: int  # index of the prompt in `prompts`
    sample: int  # the sample index (0..n-1, or the top-up indices asked for)
    tokens: list[int]  # generated token ids, the stop token excluded
    finish_reason: str  # "stop" (a stop token was generated) or "length" (max_new_tokens reached, or the window full)
    stop_token: int | None = None  # the stop token that ended the sample (finish "stop"), else None


def problem_key(problem_id: str) -> int:
    """The stable key of a problem id: the first 63 bits of its SHA-256 (the same on every machine)."""
    return stable_seed(problem_id)


# --- counter-based noise: splitmix64 on int64 tensors (wrapping arithmetic, logical shifts) ---
def _signed(c: int) -> int:
    """A 64-bit unsigned constant as the int64 with the same bits."""
    c &= (1 << 64) - 1
    return c - (1 << 64) if c >= 1 << 63 else c


_GOLDEN = _signed(0x9E3779B97F4A7C15)  # splitmix64's increment
_MUL1 = _signed(0xBF58476D1CE4E5B9)  # splitmix64's first multiplier
_MUL2 = _signed(0x94D049BB133111EB)  # splitmix64's second multiplier


def _srl(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's >> is arithmetic on negative values)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """splitmix64: a bijective 64-bit integer hash (x + golden, then the finalizer)."""
    x = x + _GOLDEN
    x = (x ^ _srl(x, 30)) * _MUL1
    x = (x ^ _srl(x, 27)) * _MUL2
    return x ^ _srl(x, 31)


def streams(seed: int, keys: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    """Per row, the hash of (seed, problem key, sample index): the part of `uniforms` fixed over a sample."""
    h = _mix(torch.full_like(keys, _signed(seed)))
    h = _mix(h ^ keys)
    return _mix(h ^ samples)


def uniforms_at(stream: torch.Tensor, step: int) -> torch.Tensor:
    """U[0, 1) float64 per row from its `streams` hash and the step."""
    return _srl(_mix(stream ^ step), 11).double() * 2.0**-53  # the top 53 bits: exactly representable


def uniforms(seed: int, keys: torch.Tensor, samples: torch.Tensor, step: int) -> torch.Tensor:
    """U[0, 1) float64 per row, a hash of (seed, problem key, sample index, step) only."""
    return uniforms_at(streams(seed, keys, samples), step)


def probabilities(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The sampling distribution (float64) of each row: softmax(logits / T), then the top-p nucleus.

    The nucleus is the smallest set of most likely tokens whose mass reaches top_p (a token is kept
    when the mass strictly before it, in descending order, is below top_p), as in transformers'
    TopPLogitsWarper and vLLM; the kept mass is renormalized. Used by `next_tokens` and by the tests.
    """
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True, stable=True)
        drop = (sorted_p.cumsum(-1) - sorted_p) >= top_p
        probs = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def next_tokens(logits: torch.Tensor, u: torch.Tensor, temperature: float, top_p: float,
           node: torch.Tensor | None = None) -> torch.Tensor:
    """Next token per row: argmax if temperature is 0, else inverse-CDF sampling with uniforms `u`.

    node: per row, the row of `logits` it draws from (rows in the same state share one logits
    row); None when logits has one row per row.
    """
    if temperature == 0:
        best = logits.argmax(-1)
        return best if node is None else best[node]
    cdf = probabilities(logits, temperature, top_p).cumsum(-1)
    cdf = cdf if node is None else cdf[node]
    # token k is drawn iff cdf[k-1] <= u * total < cdf[k]: probability p_k, never a zero-mass token
    idx = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1), right=True).squeeze(-1)
    return idx.clamp_(max=cdf.shape[-1] - 1)


# --- the decoder ---
class _BufferLayer(DynamicLayer):
    """A full-attention KV cache layer written in place into a preallocated buffer.

    transformers' DynamicLayer concatenates every step (copying the whole cache, O(length^2) over
    a sample); this one writes the new column into spare capacity. The buffer has room for
    `slots` rows, of which the first `rows` are in use; `keys`/`values` stay views of the valid
    part, so transformers code that reads them sees a normal DynamicLayer.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int, slots: int):
        super().__init__()
        b, h, n, d = keys.shape
        # [slots, heads, capacity, head dim]; never read beyond row `rows` or column `n`, so left uninitialized
        self.kbuf = keys.new_empty((max(slots, b), h, capacity, d))
        self.vbuf = values.new_empty((max(slots, b), h, capacity, values.shape[3]))
        self.kbuf[:b, :, :n], self.vbuf[:b, :, :n] = keys, values
        self.rows, self.n = b, n  # rows and columns in use
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self._views()

    def _views(self) -> None:
        self.keys, self.values = self.kbuf[:self.rows, :, :self.n], self.vbuf[:self.rows, :, :self.n]

    def update(self, key_states, value_states, *args, **kwargs):
        q = key_states.shape[2]
        self.kbuf[:self.rows, :, self.n:self.n + q] = key_states
        self.vbuf[:self.rows, :, self.n:self.n + q] = value_states
        self.n += q
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.n

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep rows `indices` (repeats allowed, at most `slots`), copying only the columns in use."""
        kbuf, vbuf = self.kbuf.new_empty(self.kbuf.shape), self.vbuf.new_empty(self.vbuf.shape)
        kbuf[:len(indices), :, :self.n], vbuf[:len(indices), :, :self.n] = self.keys[indices], self.values[indices]
        self.kbuf, self.vbuf, self.rows = kbuf, vbuf, len(indices)
        self._views()

    def copy_rows(self, src: torch.Tensor, dst: torch.Tensor, rows: int) -> None:
        """Copy rows `src` into rows `dst` (disjoint from src), then use the first `rows` rows."""
        self.kbuf[dst, :, :self.n] = self.kbuf[src, :, :self.n]
        self.vbuf[dst, :, :self.n] = self.vbuf[src, :, :self.n]
        self.rows = rows
        self._views()

    def drop_left(self, start: int) -> None:
        """Forget the first `start` columns (padding in every remaining row)."""
        self.kbuf, self.vbuf = self.kbuf[:, :, start:], self.vbuf[:, :, start:]
        self.n -= start
        self._views()


@dataclass
class _Prefilled:
    """A prompt's KV cache and next-token logits, kept until its last sample is scheduled."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values), [1, heads, length, dim]
    logits: torch.Tensor  # [vocab] float32 logits of the first generated token


def _prefill(model, prompts: list[list[int]], pad_token_id: int, extra: list[dict] | None = None) -> list[_Prefilled]:
    """Run the prompts through the model together (left-padded) and split the cache per prompt.

    extra: per prompt, further model inputs of the prefill only (e.g. a vision-language model's
    `pixel_values`, shape [1, ...]); each key's tensors are concatenated along dim 0 in prompt order.
    """
    device = model.device
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[r, width - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp_(min=0)
    inputs = {}
    if extra is not None:
        for key in extra[0]:
            inputs[key] = torch.cat([e[key] for e in extra]).to(device)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1, **inputs)
    cache = out.past_key_values
    for layer in cache.layers:
        if type(layer) is not DynamicLayer:
            raise NotImplementedError(f"decode supports full-attention caches only, got {type(layer).__name__} "
                                      f"for {type(model).__name__}; use model.generate or the vllm backend")
    logits = out.logits[:, -1].float()
    if not torch.isfinite(logits).all():
        raise FloatingPointError(f"non-finite logits after prefilling {len(prompts)} prompts")
    return [_Prefilled(kv=[(l.keys[r:r + 1, :, width - len(p):].clone(), l.values[r:r + 1, :, width - len(p):].clone())
                           for l in cache.layers],
                       logits=logits[r])
            for r, p in enumerate(prompts)]


def _batch_cache(prompts: list[int], memo: dict[int, _Prefilled], lengths: torch.Tensor,
                 capacity: int, slots: int) -> DynamicCache:
    """The cache of one row per prompt in `prompts`, each left-padded with zeros to the longest."""
    width = int(lengths.max())
    layers = []
    for layer in range(len(memo[prompts[0]].kv)):
        k0, v0 = memo[prompts[0]].kv[layer]
        k = k0.new_zeros((len(prompts), k0.shape[1], width, k0.shape[3]))
        v = v0.new_zeros((len(prompts), v0.shape[1], width, v0.shape[3]))
        for r, j in enumerate(prompts):
            kj, vj = memo[j].kv[layer]
            k[r, :, width - kj.shape[2]:] = kj[0]
            v[r, :, width - vj.shape[2]:] = vj[0]
        layers.append(_BufferLayer(k, v, capacity, slots))
    cache = DynamicCache()
    cache.layers, cache.layer_class_to_replicate = layers, None
    return cache


def _batches(samples: Sequence[Sequence[int]], batch_size: int) -> Iterator[list[tuple[int, int]]]:
    """(prompt index, sample index) rows in prompt order, cut into batches of `batch_size` rows."""
    rows: list[tuple[int, int]] = []
    for j, idx in enumerate(samples):
        for i in idx:
            rows.append((j, int(i)))
            if len(rows) == batch_size:
                yield rows
                rows = []
    if rows:
        yield rows


def _check(prompts, keys, samples, temperature, top_p, max_new_tokens, batch_size, extra, max_positions=None) -> None:
    """Clear errors for malformed arguments, naming the culprit."""
    if not (len(prompts) == len(keys) == len(samples)):
        raise ValueError(f"prompts, keys and samples differ in length: {len(prompts)}, {len(keys)}, {len(samples)}")
    if extra is not None:
        if len(extra) != len(prompts):
            raise ValueError(f"extra has {len(extra)} entries for {len(prompts)} prompts")
        names = [sorted(e) for e in extra]
        if any(n != names[0] for n in names):
            raise ValueError(f"extra: every prompt needs the same prefill inputs, got {names[0]} and "
                             f"{next(n for n in names if n != names[0])}")
    for j, (p, idx) in enumerate(zip(prompts, samples)):
        if len(p) == 0:
            raise ValueError(f"prompt {j} is empty")
        if max_positions is not None and len(p) >= max_positions:
            raise ValueError(f"prompt {j} has {len(p)} tokens and fills the model's window of {max_positions} "
                             "positions: nothing can be generated")
        if len(set(idx)) != len(idx) or any(i < 0 for i in idx):
            raise ValueError(f"prompt {j}: sample indices must be distinct and >= 0, got {list(idx)[:10]}...")
    if temperature < 0 or not 0 < top_p <= 1 or max_new_tokens < 1 or batch_size < 1:
        raise ValueError(f"bad sampling parameters: temperature={temperature} (>= 0), top_p={top_p} (in (0, 1]), "
                         f"max_new_tokens={max_new_tokens} (>= 1), batch_size={batch_size} (>= 1)")


@torch.inference_mode()
def generate(model, prompts: Sequence[Sequence[int]], keys: Sequence[int], samples: Sequence[Sequence[int]],
             seed: int, *, temperature: float = 1.0, top_p: float = 1.0, max_new_tokens: int = 256,
             stop_token_ids: Sequence[int] = (), pad_token_id: int = 0, batch_size: int = 256,
             extra: Sequence[dict] | None = None, max_positions: int | None = None,
             progress: bool = False) -> Iterator[Completion]:
    """Sample `samples[j]` (indices) of each prompt j; yield each Completion as soon as it finishes.

    model: a Hugging Face causal LM (eval mode is set here); prompts: token ids per prompt;
    keys: a stable integer per prompt's problem (`problem_key`); samples: the sample indices wanted
    per prompt; seed: the run's seed. temperature 0 is greedy. stop_token_ids end a sample (finish
    "stop", the stop token not included); max_new_tokens ends it otherwise (finish "length").
    pad_token_id fills the left padding of the batched prefill and is fed to finished rows until
    they are compacted away (masked or ignored, so any valid id does). batch_size
    bounds the sequences decoded together, hence memory. extra: per prompt, model inputs of its
    prefill only (a vision-language model's `pixel_values` [1, ...], its image_sizes...): the
    image is read once per prompt, then the n samples decode from its cache like text.
    max_positions: the model's window (its position embeddings, or a smaller max_model_len): a sample
    also ends with "length" once prompt and completion fill it, so no token is decoded at a position
    the model does not have; a prompt that fills it is an error. None: max_new_tokens only.
    """
    _check(prompts, keys, samples, temperature, top_p, max_new_tokens, batch_size, extra, max_positions)
    was_training = model.training
    model.eval()  # no dropout while sampling; the caller's mode (e.g. GRPO training) is restored after
    try:
        yield from _decode(model, prompts, keys, samples, seed, temperature, top_p, max_new_tokens,
                           stop_token_ids, pad_token_id, batch_size, extra, max_positions, progress)
    finally:
        model.train(was_training)


def _regroup(node: torch.Tensor, tokens: torch.Tensor, vocab: int, mask: torch.Tensor, lengths: torch.Tensor,
             cache: DynamicCache, capacity: int, pad_token_id: int):
    """The nodes of the next step: one per distinct (node, token) pair of the live rows.

    node, tokens: per live row, its slot and the token it drew; mask, lengths: per slot, its
    attention mask and prompt length; capacity: the slots the buffers hold. A node's first child
    keeps its slot; further children (splits) take free slots, their parent's keys and values
    copied there; slots without rows idle (fed padding) until a quarter of the slots idle or the
    slots run out, when the buffers are compacted to exactly the live nodes.
    Returns (per live row its slot, per slot the token to feed, mask, lengths).
    """
    device = node.device
    pair, inverse = torch.unique(node * vocab + tokens, return_inverse=True)  # sorted by slot, then token
    parent, fed = pair // vocab, pair % vocab
    first = torch.ones_like(parent, dtype=torch.bool)  # the first child of its parent
    first[1:] = parent[1:] != parent[:-1]
    used = torch.zeros(len(mask), dtype=torch.bool, device=device)
    used[parent] = True
    free = (~used).nonzero()[:, 0]  # idle slots, reusable
    splits = int((~first).sum())
    grow = max(0, splits - len(free))  # new slots past the last one in use
    if len(mask) + grow > capacity or len(pair) <= 0.75 * (len(mask) + grow):
        cache.batch_select_indices(parent)  # compaction: copies every live row's keys and values
        mask, lengths, where = mask[parent], lengths[parent], torch.arange(len(pair), device=device)
        start = int(mask.any(0).long().argmax())  # columns that are padding in every remaining node
        if start > 0:
            mask = mask[:, start:]
            for layer in cache.layers:
                layer.drop_left(start)
    else:
        where = parent.clone()  # the slot of each pair
        if splits:
            slots = torch.cat([free, torch.arange(len(mask), len(mask) + grow, device=device)])[:splits]
            where[~first] = slots
            src = parent[~first]
            if grow:  # rows past the last slot in use, filled just below
                mask, lengths = torch.cat([mask, mask[:1].expand(grow, -1)]), torch.cat([lengths, lengths[:1].expand(grow)])
            mask[slots], lengths[slots] = mask[src], lengths[src]
            for layer in cache.layers:
                layer.copy_rows(src, slots, len(mask))
    feed = torch.full((len(mask),), pad_token_id, dtype=torch.long, device=device)  # idle slots: padding
    feed[where] = fed
    return where[inverse], feed, mask, lengths


def placeholders(model) -> list[int]:
    """Token ids a vision-language model (or its config) reserves for its image (or video) slots. They are inputs
    only: a sampled one would be read back as a slot to fill with image features (and break the
    next forward), so `generate` gives them probability 0, as they have in the model's training
    targets. Empty for text models."""
    cfg = getattr(model, "config", model)  # a model, or its (HF) config
    names = ("image_token_id", "image_token_index", "video_token_id", "video_token_index")
    return sorted({int(v) for v in (getattr(cfg, n, None) for n in names) if v is not None})


def _decode(model, prompts, keys, samples, seed, temperature, top_p, max_new_tokens, stop_token_ids,
            pad_token_id, batch_size, extra, max_positions, progress) -> Iterator[Completion]:
    """The decoding loop of `generate` (arguments as there, already checked).

    Rows (samples) and nodes (distinct decoding states) are kept apart: rows of the same prompt
    that have drawn the same tokens so far share one node, whose logits are computed once per
    step (at step 0 a prompt's n rows are one node; greedy decoding never splits it). Each row
    draws its own token from its node's distribution with its own uniform, so a sample is the
    one it would be alone; the nodes of the next step are the distinct (node, token) pairs
    (`_regroup`). Finished rows leave at once.
    """
    device = model.device
    stops = torch.tensor(sorted(set(stop_token_ids)), dtype=torch.long, device=device)
    never = placeholders(model)  # image placeholder ids: input-only, never sampled
    lean = None if unsupported(model) else LeanStep(model)  # the lean step where it covers the model, else HF forward
    memo: dict[int, _Prefilled] = {}  # prefilled prompts with samples still to schedule
    remaining = [len(idx) for idx in samples]  # samples of each prompt not yet scheduled
    bar = tqdm(total=sum(remaining), desc="decode", unit="sample", **quiet(progress))
    for rows in _batches(samples, batch_size):
        fresh = sorted({j for j, _ in rows if j not in memo})
        if fresh:
            memo.update(zip(fresh, _prefill(model, [list(prompts[j]) for j in fresh], pad_token_id,
                                            None if extra is None else [extra[j] for j in fresh])))
        distinct = sorted({j for j, _ in rows})  # the prompts of this batch: its first nodes
        lengths = torch.tensor([len(prompts[j]) for j in distinct], device=device)  # prompt length per node
        width = int(lengths.max())
        cache = _batch_cache(distinct, memo, lengths, capacity=width + max_new_tokens, slots=len(rows))
        mask = (torch.arange(width, device=device) >= (width - lengths)[:, None]).long()  # 0 on left padding
        logits = torch.stack([memo[j].logits for j in distinct])  # [nodes, vocab]
        vocab = logits.shape[-1]
        for j, _ in rows:
            remaining[j] -= 1
            if remaining[j] == 0:
                memo.pop(j, None)  # every sample of prompt j is scheduled: free its cache
        node = torch.tensor([distinct.index(j) for j, _ in rows], device=device)  # per live row: its node
        stream = streams(seed, torch.tensor([int(keys[j]) for j, _ in rows], dtype=torch.long, device=device),
                         torch.tensor([i for _, i in rows], dtype=torch.long, device=device))  # per live row
        slot = torch.arange(len(rows), device=device)  # per live row: its position in `rows`
        generated = torch.empty((len(rows), max_new_tokens), dtype=torch.long, device=device)  # per live row
        window = max_positions if max_positions is not None else 1 << 62
        budget = torch.tensor([min(max_new_tokens, window - len(prompts[j])) for j, _ in rows],
                              device=device)  # per live row: tokens it may generate (max_new_tokens, or to the window)
        for step in range(max_new_tokens):
            if never:
                logits[:, never] = float("-inf")
            u = uniforms_at(stream, step) if temperature > 0 else None
            tokens = next_tokens(logits, u, temperature, top_p, node)
            generated[:, step] = tokens
            stopped = (tokens[:, None] == stops).any(-1)  # torch.isin is slower on a few stop ids
            finished = stopped | (step >= budget - 1)
            if bool(finished.any()):
                for b, stop in zip(finished.nonzero()[:, 0].tolist(), stopped[finished].tolist()):
                    r = int(slot[b])
                    bar.update(1)
                    yield Completion(prompt=rows[r][0], sample=rows[r][1],
                                     tokens=generated[b, :step + (not stop)].tolist(),
                                     finish_reason="stop" if stop else "length",
                                     stop_token=int(tokens[b]) if stop else None)
                live = ~finished
                if not bool(live.any()):
                    break
                node, tokens, stream = node[live], tokens[live], stream[live]
                slot, generated, budget = slot[live], generated[live], budget[live]
            node, fed, mask, lengths = _regroup(node, tokens, vocab, mask, lengths, cache, len(rows), pad_token_id)
            mask = torch.cat([mask, mask.new_ones((len(mask), 1))], dim=1)
            positions = lengths + step
            if lean is not None:
                logits = lean(fed, positions, mask, cache.layers)
            else:
                out = model(input_ids=fed[:, None], attention_mask=mask, position_ids=positions[:, None],
                            past_key_values=cache, use_cache=True)
                logits = out.logits[:, -1].float()
    bar.close()
