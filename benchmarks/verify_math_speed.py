"""Math grading at scale vs a sequential per-sample Math-Verify loop (issue 5: goal >= 10x, identical verdicts).

Sample set: PROBLEMS MATH500 problems x SAMPLES responses each, built from the reference solution
with its final box replaced by an answer drawn (seeded) from a small per-problem pool, as real
samples repeat a few answers: the gold, the gold in another form (decimal for a fraction), a wrong
answer or two, and some truncated responses without a box. Three graders:
- `loop`: for each sample, our extraction + Math-Verify parse/verify, in this process, one by one;
- `peer`: Math-Verify's own `parse` on the whole response (no extraction of ours), one by one;
- `ours`: `boundary.verify.math.grade_many` (distinct (gold, answer) pairs once, a 2-process pool).
Verdicts of `ours` must equal `loop` exactly; `peer` agreement is reported.

Run: .venv/bin/python benchmarks/verify_math_speed.py [--problems 200] [--samples 64] [--order stream|problem]
     [--dataset math500|gsm8k]
"""
import argparse
import json
import random
import re
import time

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from boundary import ROOT
from boundary.verify.math import _latex, extract, grade_many

DATA = ROOT.parent / "shared" / "data" / "benchmarks"


def pool(gold: str, rng: random.Random) -> list[str]:
    """Answers one problem's samples repeat: gold, gold in another form, wrong ones."""
    answers = [gold, gold]
    m = re.fullmatch(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}", gold)
    if m:
        answers.append(f"{int(m.group(1)) / int(m.group(2)):.6g}")
    elif re.fullmatch(r"-?\d+", gold):
        answers += [f"{gold}.0", str(int(gold) + rng.choice([-1, 1, 2]))]
    answers += [gold + "+1", "0"]
    return answers


def build(problems: int, samples: int, seed: int = 0, order: str = "stream",
          dataset: str = "math500") -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    rows = [json.loads(line) for line in open(DATA / dataset / "test.jsonl")][:problems]
    if dataset == "gsm8k":  # its reference: reasoning, then `#### N`; answer it with a box
        rows = [{"answer": r["answer"].split("####")[-1].strip().replace(",", ""),
                 "solution": r["answer"].split("####")[0] + "\\boxed{}"} for r in rows]
    responses, golds = [], []
    for r in rows:
        answers = pool(r["answer"], rng)
        head = r["solution"][: r["solution"].rfind("\\boxed")]
        for _ in range(samples):
            if rng.random() < 0.05:
                responses.append(head[: max(1, len(head) // 2)])  # truncated: no answer
            else:
                responses.append(head + "\\boxed{" + rng.choice(answers) + "}.")
            golds.append(r["answer"])
    if order == "stream":  # as a sampler streams them: sample 0 of every problem, then sample 1, ...
        idx = [p * samples + i for i in range(samples) for p in range(len(rows))]
        responses, golds = [responses[i] for i in idx], [golds[i] for i in idx]
    return responses, golds


def loop(responses, golds) -> list[bool]:
    config = [LatexExtractionConfig(), ExprExtractionConfig()]
    out = []
    for response, gold in zip(responses, golds):
        answer, _ = extract(response)
        out.append(answer is not None and verify(parse(_latex(gold), config), parse(_latex(answer), config)))
    return out


def peer(responses, golds) -> list[bool]:
    return [verify(parse(_latex(g)), parse(r)) for r, g in zip(responses, golds)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=200, help="MATH500 problems")
    ap.add_argument("--samples", type=int, default=64, help="samples per problem")
    ap.add_argument("--workers", type=int, default=2, help="processes for grade_many")
    ap.add_argument("--order", choices=["stream", "problem"], default="stream",
                    help="stream: interleaved as sampled; problem: grouped (Math-Verify's own small LRU caches then help the loop)")
    ap.add_argument("--dataset", default="math500", choices=["math500", "gsm8k"], help="whose answers")
    a = ap.parse_args()
    responses, golds = build(a.problems, a.samples, order=a.order, dataset=a.dataset)
    distinct = len({(extract(r)[0], g) for r, g in zip(responses, golds)})
    print(f"{a.dataset}: {len(responses)} samples, {a.problems} problems x {a.samples}, {a.order} order, "
          f"{distinct} distinct (answer, gold) pairs")

    warm = [f"\\boxed{{{i}}}" for i in range(4 * a.workers)]
    grade_many(warm, ["1"] * len(warm), workers=a.workers)  # start the workers (imports sympy) outside the clock
    t = time.perf_counter()
    ours = [v.correct for v in grade_many(responses, golds, workers=a.workers)]
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    base = loop(responses, golds)
    t_loop = time.perf_counter() - t
    t = time.perf_counter()
    theirs = peer(responses, golds)
    t_peer = time.perf_counter() - t

    same = sum(x == y for x, y in zip(ours, base))
    agree = sum(x == y for x, y in zip(ours, theirs))
    print(f"loop (sequential, per sample):      {t_loop:8.2f} s  {len(responses) / t_loop:9.0f} samples/s")
    print(f"peer (Math-Verify parse, per sample): {t_peer:6.2f} s  {len(responses) / t_peer:9.0f} samples/s")
    print(f"ours (grade_many, {a.workers} workers):       {t_ours:8.2f} s  {len(responses) / t_ours:9.0f} samples/s")
    print(f"speed-up vs loop: {t_loop / t_ours:.1f}x   vs peer: {t_peer / t_ours:.1f}x")
    print(f"identical verdicts vs loop: {same}/{len(ours)}   agreement with peer: {agree}/{len(ours)}")
    print(f"correct: ours {sum(ours)}, loop {sum(base)}, peer {sum(theirs)}")
    if same != len(ours):
        raise SystemExit("verdicts differ from the sequential loop")


if __name__ == "__main__":
    main()
