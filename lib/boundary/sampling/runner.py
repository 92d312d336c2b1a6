"""The sampling runner: fill a store with n samples per problem, generating only what is missing.

`run(backend, store, problems, n, params)` asks the store which (problem, index) pairs are absent,
has the backend sample exactly those, and appends them to the store in shards of `chunk` samples
(or every `flush_s` seconds), so a run killed at any moment loses at most the unwritten shard and
resumes where it stopped; asking for a larger n later tops up. Before sampling it checks that the
stored samples of each problem were drawn from the same rendered prompt and image (a changed
benchmark, template or picture must open a new store, not be mixed in).

As a command (used by the crash-resume test and benchmark, and handy on a GPU box):
  python -m boundary.sampling.runner --model DIR_OR_HUB_ID --problems FILE.jsonl --n 64 --store DIR
where each JSONL line is {"id": ..., "question": ...}, rendered with a registered prompt template
(--template, as a params file's `models[].template`; default `chat-question`, the tokenizer's chat
template around the bare question). The command applies the model's stop rule for that template
(--kind) and its window (--max-model-len), and derives the store key exactly as the notebooks'
runs do (`stops.store_key`): with the same settings its store is theirs.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from boundary import quiet
from boundary.config import Sampling
from boundary.sampling.backends import Backend, Request, load
from boundary.sampling.stops import StopRule, store_key
from boundary.store import Store, prompt_sha256
from boundary.tasks import Problem, templates


@dataclass(frozen=True)
class RunStats:
    """What one call of `run` did."""

    samples: int  # samples generated and stored by this call
    completion_tokens: int  # tokens they hold
    seconds: float  # wall time of the call
    shards: int  # shards written


Prompt = tuple[str, str] | tuple[str, str, bytes | None]  # (id, rendered prompt) or (id, prompt, image bytes)


def _image(problem: Prompt) -> bytes | None:
    """The image of a (id, prompt[, image]) tuple, None for a text prompt."""
    return problem[2] if len(problem) > 2 else None


def check_prompts(store: Store, problems: Sequence[Prompt]) -> None:
    """Raise if a problem's stored samples came from another rendered prompt (or image) than the one given now."""
    df = store.read(["problem_id", "prompt_sha256"])
    if df.empty:
        return
    stored = df.groupby("problem_id")["prompt_sha256"].agg(lambda s: set(s))
    for p in problems:
        pid, prompt = p[0], p[1]
        if pid in stored.index and stored[pid] != {prompt_sha256(prompt, _image(p))}:
            raise ValueError(f"{store.dir}: problem {pid!r} was sampled from another prompt "
                             f"(stored prompt hashes {sorted(stored[pid])}); the benchmark, template or image changed")


def run(backend: Backend, store: Store, problems: Sequence[Prompt], n: int, params: Sampling, *,
        chunk: int = 64, flush_s: float = 30.0, progress: bool = False, rule: StopRule | None = None) -> RunStats:
    """Sample indices 0..n-1 of each (problem id, rendered prompt[, image bytes]) that the store lacks;
    stream them in.

    chunk: samples per shard; flush_s: a shorter shard is written after this many seconds, so a slow
    model loses little when killed. rule: what ends a sample (stops.stop_rule; None: the model's
    end-of-sequence ids), which the store's key must record (store.make_key's `stops`). Returns what
    was generated (nothing when the store is full).
    """
    ids = [p[0] for p in problems]
    if len(set(ids)) != len(ids):
        raise ValueError("problem ids must be unique: " + ", ".join(sorted({i for i in ids if ids.count(i) > 1})[:5]))
    check_prompts(store, problems)
    t0 = time.time()
    gaps = store.missing(ids, n)
    by_id = {p[0]: p for p in problems}
    requests = [Request(pid, by_id[pid][1], tuple(idx), _image(by_id[pid])) for pid, idx in gaps.items()]
    total, tokens, shards, buffer, last = 0, 0, 0, [], time.time()
    bar = tqdm(total=sum(len(r.samples) for r in requests), desc=f"sample {store.key.folder()}", unit="sample",
               **quiet(progress))
    for s in backend.sample(requests, params, rule):
        buffer.append(s)
        bar.update(1)
        if len(buffer) >= chunk or time.time() - last > flush_s:
            store.append(buffer)
            total, tokens, shards = total + len(buffer), tokens + sum(b.completion_tokens for b in buffer), shards + 1
            buffer, last = [], time.time()
    if buffer:
        store.append(buffer)
        total, tokens, shards = total + len(buffer), tokens + sum(b.completion_tokens for b in buffer), shards + 1
    bar.close()
    left = store.missing(ids, n)
    if left:
        raise RuntimeError(f"{store.dir}: the backend did not return {sum(map(len, left.values()))} requested samples, "
                           f"e.g. {next(iter(left.items()))}")
    return RunStats(samples=total, completion_tokens=tokens, seconds=time.time() - t0, shards=shards)


def main(argv: Sequence[str] | None = None) -> None:
    """The command-line runner (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="checkpoint folder or hub id")
    ap.add_argument("--revision", default=None, help="hub revision")
    ap.add_argument("--problems", required=True, type=Path, help="JSONL of {id, prompt} or {id, question}")
    ap.add_argument("--template", default="chat-question", help=f"prompt template: {', '.join(templates.TEMPLATES)}")
    ap.add_argument("--kind", default="math", choices=["math", "visual"], help="problem kind (chooses the stop rule)")
    ap.add_argument("--n", type=int, required=True, help="samples per problem")
    ap.add_argument("--store", required=True, type=Path, help="store root folder")
    ap.add_argument("--backend", default="transformers", choices=["transformers", "vllm"])
    ap.add_argument("--temperature", type=float, default=0.6)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--max-model-len", type=int, default=None, help="prompt + completion window (default the model's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--stop", action="append", default=[], help="a stop string (repeatable)")
    ap.add_argument("--chunk", type=int, default=64, help="samples per shard")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    a = ap.parse_args(argv)
    templates.get(a.template)  # an unknown name fails here, listing the known ones, before a model loads
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    params = Sampling(backend=a.backend, temperature=a.temperature, top_p=a.top_p, max_new_tokens=a.max_new_tokens,
                      seed=a.seed, batch_size=a.batch_size, stop=a.stop)
    problems = []
    for line_no, line in enumerate(a.problems.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row, dict) or "id" not in row or "question" not in row:
            raise ValueError(f"{a.problems}:{line_no}: needs 'id' and 'question'")
        problems.append(Problem.bare(row["id"], row["question"], row.get("gold")))
    rule, key = store_key(a.model, a.template, a.backend, params, a.kind, a.revision, max_model_len=a.max_model_len)
    backend = load(a.backend, a.model, a.revision, params, max_model_len=a.max_model_len)
    store = Store(a.store, key)  # after the model loads: a model that cannot load leaves no store folder
    try:
        prompts = [(p.id, templates.render(a.template, p, backend.tokenizer)) for p in problems]
        stats = run(backend, store, prompts, a.n, params, chunk=a.chunk, progress=True, rule=rule)
    finally:
        getattr(backend, "close", lambda: None)()
    print(json.dumps({"store": str(store.dir), **stats.__dict__}))

if __name__ == "__main__":
    main()
