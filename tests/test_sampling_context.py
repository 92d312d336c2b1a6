"""Context limits in params: models[].max_model_len, and what each params/paper file says about the
condition it reproduces (the paper's 16,384 new tokens or the released code's 4,096 in total)."""
import re

import pytest
import yaml

from boundary import config

PAPER = sorted(p.stem for p in (config.PARAMS / "paper").glob("*.yaml"))
QWEN_MATH = {"qwen2.5-math-7b-oat-zero"}  # every model has 4,096 positions: both conditions coincide
OVERRIDE = "# max_model_len: 4096"  # the documented override, commented out under a model


def with_override(name: str) -> config.Experiment:
    """The experiment with its documented override for the other condition applied to the text."""
    text = (config.PARAMS / "paper" / f"{name}.yaml").read_text()
    text = text.replace(OVERRIDE, OVERRIDE[2:]).replace("max_model_len: 20480", "max_model_len: 4096")
    return config.Experiment.model_validate({**yaml.safe_load(text), "name": f"paper/{name}"})


@pytest.mark.parametrize("name", PAPER)
def test_each_paper_file_states_its_condition_and_offers_the_other(name):
    text = (config.PARAMS / "paper" / f"{name}.yaml").read_text()
    context = re.search(r"# Context:(.*?)\n  max_new_tokens", text, re.S)
    assert context, "a 'Context:' comment before max_new_tokens says which condition the file reproduces"
    assert "16,384" in context.group(1) and "4,096" in context.group(1)
    exp = config.load(f"paper/{name}")
    assert exp.sampling.max_new_tokens == 16384
    if name in QWEN_MATH:
        assert "coincide" in context.group(1) and all(m.max_model_len is None for m in exp.models)
        return
    other = with_override(name)
    changed = [m for m, o in zip(exp.models, other.models) if m.max_model_len != o.max_model_len]
    assert changed and all(o.max_model_len == 4096 for o in other.models if o.label in {m.label for m in changed})
    # the models whose own window exceeds 4,096 get the cap; only the Qwen2.5-Math ones may go without
    assert all(o.max_model_len == 4096 or "Qwen2.5-Math" in o.path for o in other.models)


def test_the_1m_context_model_is_capped():
    exp = config.load("paper/code-r1-7b")
    assert [m.max_model_len for m in exp.models] == [16384 + 4096] * 2


@pytest.mark.parametrize("name", ["qwen2.5-32b-simplerl", "qwen2.5-32b-dapo"])
def test_the_32b_files_ask_for_one_gpu_and_say_what_80gb_cards_need(name):
    exp = config.load(f"paper/{name}")
    assert exp.sampling.tensor_parallel_size == 1
    assert re.search(r"80 GB cards.*set 2", (config.PARAMS / "paper" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("value, ok", [
    (None, True),  # the model's own window
    (4096, True),  # the released code's condition
    (1, False),  # no room for a prompt and a token
    ("big", False),  # not a number
])
def test_max_model_len_validates(tmp_path, monkeypatch, value, ok):
    monkeypatch.setattr(config, "PARAMS", tmp_path)
    model = {"label": "m", "role": "base", "path": "org/m", **({} if value is None else {"max_model_len": value})}
    (tmp_path / "x.yaml").write_text(yaml.safe_dump({"models": [model], "benchmarks": [{"name": "gsm8k", "n": 1}]}))
    if ok:
        assert config.load("x").models[0].max_model_len == value
    else:
        with pytest.raises(config.ConfigError, match=r"models\.0\.max_model_len"):
            config.load("x")
