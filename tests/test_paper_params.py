"""params/paper/: every experiment of the paper validates and asks for the paper's settings."""
import re

import pytest

from boundary import config, tasks

PAPER = sorted(p.stem for p in (config.PARAMS / "paper").glob("*.yaml"))

# experiment -> (base model, RL or compared models): the list of the paper's experiments
EXPECTED = [
    ("qwen2.5-7b-simplerl", "Qwen/Qwen2.5-7B", {"hkust-nlp/Qwen-2.5-7B-SimpleRL-Zoo"}),
    ("qwen2.5-14b-simplerl", "Qwen/Qwen2.5-14B", {"hkust-nlp/Qwen-2.5-14B-SimpleRL-Zoo"}),
    ("qwen2.5-32b-simplerl", "Qwen/Qwen2.5-32B", {"hkust-nlp/Qwen-2.5-32B-SimpleRL-Zoo"}),
    ("qwen2.5-math-7b-oat-zero", "Qwen/Qwen2.5-Math-7B", {"sail/Qwen2.5-Math-7B-Oat-Zero"}),
    ("qwen2.5-32b-dapo", "Qwen/Qwen2.5-32B", {"BytedTsinghua-SIA/DAPO-Qwen-32B"}),
    ("llama3.1-8b-simplerl", "meta-llama/Llama-3.1-8B", {"hkust-nlp/Llama-3.1-8B-SimpleRL-Zoo"}),
    ("code-r1-7b", "Qwen/Qwen2.5-7B-Instruct-1M", {"ganler/CodeR1-Zero-Qwen2.5-7B-12k-832"}),
    ("deepcoder-14b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", {"agentica-org/DeepCoder-14B-Preview"}),
    ("qwen2.5-vl-7b-easyr1", "Qwen/Qwen2.5-VL-7B-Instruct", {"models/paper/qwen2.5-vl-7b-easyr1-geo3k"}),
    ("distillation-qwen2.5-math-7b", "Qwen/Qwen2.5-Math-7B",
     {"sail/Qwen2.5-Math-7B-Oat-Zero", "Qwen/Qwen2.5-Math-7B-Instruct", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"}),
]


def test_every_paper_experiment_has_a_params_file():
    assert PAPER == sorted(name for name, _, _ in EXPECTED)


@pytest.mark.parametrize("name,base,others", EXPECTED)
def test_paper_params_validate_with_the_papers_settings(name, base, others):
    exp = config.load(f"paper/{name}")
    assert exp.models[0].role == "base" and exp.models[0].path == base
    assert {m.path for m in exp.models[1:]} == others
    s = exp.sampling
    assert (s.backend, s.temperature, s.top_p, s.max_new_tokens) == ("vllm", 0.6, 0.95, 16384)
    for b in exp.benchmarks:
        assert b.name in tasks.REGISTRY
        assert b.n == (1024 if b.name in ("aime24", "amc23") else 128)  # the largest k the paper plots
        assert b.source is None and b.limit is None  # the hub, whole benchmarks
        assert b.drop_multiple_choice == (tasks.REGISTRY[b.name].kind == "visual")
        for m in exp.models:  # every model's template renders every benchmark's kind
            assert tasks.templates.covers(m.template, tasks.REGISTRY[b.name].kind), (m.label, b.name)
    labels = {m.label for m in exp.models}
    assert set(exp.passk.pair) <= labels
    assert tasks.same_for_pair(exp.models)  # base and RL share their template
    from boundary import runs  # every model meets the benchmarks of its modality (text or visual)

    assert {m.label for m, _ in runs.pairs(exp)} == labels
    for m in exp.models:  # a hub id ("org/name") or a folder under models/
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", m.path) or m.path.startswith("models/"), m.path
