"""The model the sampling benchmarks run on: a 1.4M-parameter Llama briefly trained on arithmetic traces.

The miniature checkpoints are built elsewhere; these benchmarks need a model whose samples end at
varied lengths with the end-of-sequence token, as a trained model's do (a random model runs every
sample to max_new_tokens, which hides what a sampler does with finished rows). Trained once
(a few minutes on one CPU thread) and cached under results/benchmarks/ (ignored by git);
`--model DIR` in each benchmark uses any other checkpoint instead, e.g. models/miniature/base.
"""
import random
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from tiny_lm import char_tokenizer, tiny_llama  # noqa: E402

CACHE = ROOT / "results" / "benchmarks" / "arith-llama"  # the trained checkpoint
STEPS = 300  # optimizer steps of the brief training
SEED = 0  # data, initialisation and training order


def problem(rng: random.Random) -> tuple[str, str]:
    """(question, trace): a chain of 1-7 additions/subtractions, one step per line, then the answer."""
    terms = [rng.randint(1, 99) for _ in range(rng.randint(2, 8))]
    ops = [rng.choice("+-") for _ in terms[1:]]
    question = str(terms[0]) + "".join(f"{o}{t}" for o, t in zip(ops, terms[1:])) + "?"
    acc, lines = terms[0], []
    for o, t in zip(ops, terms[1:]):
        new = acc + t if o == "+" else acc - t
        lines.append(f"{acc}{o}{t}={new}")
        acc = new
    return question, "\n".join(lines) + f"\nanswer: {acc}"


def questions(n: int, seed: int = 1) -> list[str]:
    """n benchmark questions (a different stream from the training data)."""
    rng = random.Random(seed)
    return [problem(rng)[0] for _ in range(n)]


def gold(question: str) -> int:
    """The right answer of a question (a chain of + and - on integers, written by `problem`)."""
    return sum(int(t) for t in re.findall(r"[+-]?\d+", question.rstrip("?")))


def few_shot(question: str, shots: int, seed: int = 2) -> str:
    """The question preceded by `shots` solved examples (a long prompt, as few-shot evaluations use)."""
    rng = random.Random(seed)
    examples = [problem(rng) for _ in range(shots)]
    return "".join(f"{q}\n{t}\n\n" for q, t in examples) + question


def build(steps: int = STEPS) -> Path:
    """Train (or reuse) the benchmark checkpoint; return its folder."""
    if (CACHE / "model.safetensors").exists():
        return CACHE
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    tok = char_tokenizer()
    model = tiny_llama(SEED, vocab=len(tok), hidden=192, layers=4, init=0.02).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.1)
    for step in range(steps):
        batch = []
        for _ in range(32):
            q, trace = problem(rng)
            prompt = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
            ids = tok(prompt, add_special_tokens=False)["input_ids"]
            batch.append((ids, tok(trace, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]))
        width = max(len(p) + len(a) for p, a in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        for r, (p, a) in enumerate(batch):
            ids[r, :len(p) + len(a)] = torch.tensor(p + a)
            labels[r, len(p):len(p) + len(a)] = torch.tensor(a)  # loss on the answer only
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"  train step {step}: loss {loss.item():.3f}", file=sys.stderr)
    model.eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    tmp = CACHE.with_name(CACHE.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(CACHE)
    return CACHE
