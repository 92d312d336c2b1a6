"""CPU tokens/s of the transformers backend's decoder vs `model.generate()`, same model, same batch.

For each configuration (n samples per problem, k few-shot examples before the question: a long
prompt) and each problem, both sample n answers at the same temperature / top-p / max_new_tokens with the
end-of-sequence token as the stop: `model.generate(num_return_sequences=n, top_k=0)` (one call per
problem, n rows), and `boundary.sampling.decode.generate` with batch_size=n (the same n rows per
batch). Throughput counts generated tokens (the stop token included) per wall second. Then the two
output distributions are compared with two-sample tests, per problem: chi-square on the outcome
(correct / wrong / no answer) and on the number of reasoning steps, Kolmogorov-Smirnov on response
lengths; they should agree (p > 0.01), not match string for string (the random streams differ).

The problems and the verdict follow the checkpoint: a miniature checkpoint (a folder with
`miniature.json`, e.g. models/miniature/base) gets held-out `test` problems of
boundary.miniature.task, few-shot examples as earlier chat turns, and that task's checker
(`\\boxed{}` answers, steps counted by `=`); any other checkpoint gets bench_model's arithmetic
chains (`answer: N`, steps counted by lines).

Each sampler runs `--repeats` times, alternating, and its fastest run counts (the shared machine's
load varies between runs; both samplers are seeded, so every repeat gives the same samples).

    .venv/bin/python benchmarks/sampling_throughput.py [--model DIR] [--configs 64:0,256:0,64:3] [--threads 1] [--repeats 3]
"""
import argparse
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from scipy.stats import chi2_contingency, ks_2samp
from transformers import AutoModelForCausalLM, AutoTokenizer

import bench_model
from boundary.miniature import task
from boundary.sampling.decode import generate, problem_key
from boundary.sampling.lean import unsupported


class Arithmetic:
    """bench_model's checkpoint: `a+b-c?` chains, one step per line, `answer: N` at the end."""

    questions = staticmethod(bench_model.questions)  # questions(n) -> n question strings

    @staticmethod
    def messages(question: str, shots: int) -> list[dict]:
        """The chat of one prompt: the few-shot examples and the question in one user turn."""
        return [{"role": "user", "content": bench_model.few_shot(question, shots) if shots else question}]

    @staticmethod
    def outcome(text: str, question: str) -> tuple[str, int]:
        """(outcome: 'correct', 'wrong' or 'no answer'; reasoning steps: lines) of one response."""
        m = re.search(r"answer: (-?\d+)", text)
        verdict = "no answer" if m is None else "correct" if int(m.group(1)) == bench_model.gold(question) else "wrong"
        return verdict, text.count("\n") + 1


class Miniature:
    """A miniature checkpoint: held-out `test` questions, `\\boxed{}` answers, steps joined by `=`."""

    @staticmethod
    def questions(n: int) -> list[str]:
        """n held-out test questions spread evenly over the difficulties."""
        pool = task.problems("test")
        return [pool[round(i * (len(pool) - 1) / max(n - 1, 1))]["question"] for i in range(n)]

    @staticmethod
    def messages(question: str, shots: int) -> list[dict]:
        """The few-shot examples as earlier (user, assistant) turns, then the question."""
        rng = random.Random(2)
        chat = []
        for _ in range(shots):
            q = task.expression(rng, rng.randint(2, 5))
            chat += [{"role": "user", "content": q}, {"role": "assistant", "content": task.solve(q)}]
        return chat + [{"role": "user", "content": question}]

    @staticmethod
    def outcome(text: str, question: str) -> tuple[str, int]:
        """(outcome by the task's checker; reasoning steps: the `=` of the trace, plus one)."""
        verdict = "no answer" if task.boxed(text) is None else "correct" if task.check_answer(question, text) else "wrong"
        return verdict, text.count("=") + 1


def outcomes(texts: list[str], question: str, kind) -> tuple[list[str], list[int]]:
    """Per text: its outcome ('correct', 'wrong', 'no answer') and its number of reasoning steps."""
    pairs = [kind.outcome(t, question) for t in texts]
    return [o for o, _ in pairs], [s for _, s in pairs]


def compare(cells_a: list, cells_b: list) -> float:
    """Two-sample chi-square p-value of two lists of categorical outcomes (cells under 10 pooled)."""
    ca, cb = Counter(cells_a), Counter(cells_b)
    common = sorted((c for c in set(ca) | set(cb) if ca[c] + cb[c] >= 10), key=str)
    table = [[cnt[c] for c in common] + [sum(v for k, v in cnt.items() if k not in common)] for cnt in (ca, cb)]
    if table[0][-1] + table[1][-1] == 0:
        table = [r[:-1] for r in table]
    return chi2_contingency(table).pvalue if len(table[0]) > 1 else 1.0


def bench(model, tok, qs: list[str], n: int, shots: int, a, kind) -> dict:
    """Time both samplers on the same problems and rows; return the measurements."""
    stop = tok.eos_token_id
    prompts = [tok(tok.apply_chat_template(kind.messages(q, shots), tokenize=False, add_generation_prompt=True),
                   add_special_tokens=False)["input_ids"] for q in qs]

    def ours_run():
        """ours: every problem in one call, n rows per batch (the rows model.generate gets per call)."""
        return list(generate(model, prompts, [problem_key(q) for q in qs], [range(n)] * len(qs), seed=0,
                             temperature=a.temperature, top_p=a.top_p, max_new_tokens=a.max_new_tokens,
                             stop_token_ids=[stop], pad_token_id=tok.pad_token_id, batch_size=n))

    def hf_run():
        """model.generate: one call per problem, n return sequences, top_k disabled (its default is 50)."""
        torch.manual_seed(0)
        hf, count = {}, 0
        with torch.inference_mode():
            for j, p in enumerate(prompts):
                out = model.generate(torch.tensor([p]), do_sample=True, temperature=a.temperature, top_p=a.top_p,
                                     top_k=0, max_new_tokens=a.max_new_tokens, num_return_sequences=n,
                                     eos_token_id=stop, pad_token_id=tok.pad_token_id)
                hf[j] = []
                for row in out[:, len(p):].tolist():
                    k = row.index(stop) + 1 if stop in row else len(row)  # through the stop token, as ours
                    count += k
                    hf[j].append(tok.decode(row[:k], skip_special_tokens=True))
        return hf, count

    # alternate the two `a.repeats` times and keep each one's fastest run: on a shared machine the
    # load changes between runs, and the minimum is the run least disturbed by it (both are seeded:
    # every repeat produces the same samples)
    t_ours = t_hf = float("inf")
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        ours = ours_run()
        t_ours = min(t_ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        hf, tok_hf = hf_run()
        t_hf = min(t_hf, time.perf_counter() - t0)
    tok_ours = sum(len(c.tokens) + (c.finish_reason == "stop") for c in ours)
    by_problem = {j: [tok.decode(c.tokens, skip_special_tokens=True) for c in ours if c.prompt == j] for j in range(len(qs))}

    cells_o, cells_h, len_o, len_h = [], [], [], []
    for j, q in enumerate(qs):
        (o, lo), (h, lh) = outcomes(by_problem[j], q, kind), outcomes(hf[j], q, kind)
        cells_o += [(j, x) for x in o]
        cells_h += [(j, x) for x in h]
        len_o += [len(t) for t in by_problem[j]]
        len_h += [len(t) for t in hf[j]]
    steps_o = [(j, s) for j in range(len(qs)) for s in outcomes(by_problem[j], qs[j], kind)[1]]
    steps_h = [(j, s) for j in range(len(qs)) for s in outcomes(hf[j], qs[j], kind)[1]]
    return {"n": n, "shots": shots, "prompt_tokens": sum(map(len, prompts)) / len(prompts),
            "hf_tok_s": tok_hf / t_hf, "ours_tok_s": tok_ours / t_ours, "speedup": (tok_ours / t_ours) / (tok_hf / t_hf),
            "hf_s": t_hf, "ours_s": t_ours, "tokens": (tok_hf, tok_ours),
            "p_outcome": compare(cells_o, cells_h), "p_steps": compare(steps_o, steps_h), "p_length": ks_2samp(len_o, len_h).pvalue,
            "correct": (sum(c[1] == "correct" for c in cells_o) / len(cells_o), sum(c[1] == "correct" for c in cells_h) / len(cells_h))}


def load(a) -> tuple:
    """(path, tokenizer, float32 model, problem kind, questions) from the command line's --model,
    --threads and --problems (a miniature checkpoint gets its own problems; else the bench model)."""
    torch.set_num_threads(a.threads)
    path = a.model or bench_model.build()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    kind = Miniature if (Path(path) / "miniature.json").exists() else Arithmetic
    return path, tok, model, kind, kind.questions(a.problems)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint folder (default: the benchmark's trained tiny Llama)")
    ap.add_argument("--configs", default="64:0,256:0,64:3", help="comma-separated n:shots (samples per problem : few-shot examples)")
    ap.add_argument("--problems", type=int, default=4, help="problems sampled")
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the CI machine is shared)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each sampler, alternating; the fastest counts")
    a = ap.parse_args()
    path, tok, model, kind, qs = load(a)
    print(f"model {path}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; {a.problems} problems "
          f"({kind.__name__.lower()}), max_new_tokens={a.max_new_tokens}, T={a.temperature}, top_p={a.top_p}, "
          f"threads={a.threads}, fastest of {a.repeats} alternating runs; decode step: {unsupported(model) or 'lean'}")
    print(f"{'n':>4} {'shots':>5} {'prompt':>6} | {'generate tok/s':>14} {'ours tok/s':>10} {'speed-up':>8} | "
          f"{'p outcome':>9} {'p steps':>8} {'p length':>8} | correct ours/generate")
    ok = True
    for cfg in a.configs.split(","):
        n, shots = map(int, cfg.split(":"))
        r = bench(model, tok, qs, n, shots, a, kind)
        agree = min(r["p_outcome"], r["p_steps"], r["p_length"]) > 0.01
        ok &= agree
        print(f"{n:4d} {shots:5d} {r['prompt_tokens']:6.0f} | {r['hf_tok_s']:14.0f} {r['ours_tok_s']:10.0f} {r['speedup']:7.2f}x | "
              f"{r['p_outcome']:9.3f} {r['p_steps']:8.3f} {r['p_length']:8.3f} | {r['correct'][0]:.2f}/{r['correct'][1]:.2f}"
              f"{'' if agree else '  DISTRIBUTIONS DIFFER'}", flush=True)
    print("output distributions agree in every configuration (all p > 0.01)" if ok else "some distributions differ")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
