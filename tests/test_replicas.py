"""Replicas of the paper's models (boundary.miniature.replicas) and the REPLICA=1 overlay (boundary.config).

The replicas are built by `make replicas` (`make test` builds them first) under models/replicas; tests
that need them skip when they are absent (fail under CI=true, like the smoke models). The expected
texts below are written from the real models' documented behaviour, not from the replicas' own files.
"""
import json
import os
from pathlib import Path

import pytest
import torch

from boundary import ROOT, config, runs
from boundary.miniature import replicas
from boundary.tasks import templates

torch.set_num_threads(1)
IN_CI = os.environ.get("CI") == "true"
PAPER = sorted(str(p.relative_to(config.PARAMS))[:-5] for p in (config.PARAMS / "paper").glob("*.yaml"))
TEXT_PAPER = [name for name in PAPER if not any(m.modality == "vision" for m in config.load(name, replicas=False).models)]


def built(name: str) -> Path:
    """The replica folder, or skip (fail in CI) when `make replicas` has not run."""
    path = replicas.folder(name)
    if not (path / "replica.json").is_file():
        msg = f"replica {name} is absent: run `make replicas`"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def test_every_paper_model_has_a_replica():
    for name in PAPER:
        for m in config.load(name, replicas=False).models:
            assert m.path in replicas.HUB, f"{name}: {m.path}"


# family -> (architecture class, vocabulary size, positions, generation config's eos, tokenizer's eos)
FACTS = {
    "qwen2.5": ("Qwen2ForCausalLM", 152064, 131072, 151643, "<|endoftext|>"),  # base: <|endoftext|> only
    "qwen2.5-math": ("Qwen2ForCausalLM", 152064, 4096, 151643, "<|endoftext|>"),  # 4,096 positions
    "qwen2.5-math-instruct": ("Qwen2ForCausalLM", 152064, 4096, [151645, 151643], "<|im_end|>"),
    "qwen2.5-instruct-1m": ("Qwen2ForCausalLM", 152064, 1010000, [151645, 151643], "<|im_end|>"),
    "llama3.1": ("LlamaForCausalLM", 128256, 131072, 128001, "<|end_of_text|>"),  # not <|eot_id|>
    "r1-distill-qwen-7b": ("Qwen2ForCausalLM", 152064, 131072, 151643, "<｜end▁of▁sentence｜>"),
    "r1-distill-qwen-14b": ("Qwen2ForCausalLM", 152064, 131072, 151643, "<｜end▁of▁sentence｜>"),
    "qwen2.5-vl": ("Qwen2_5_VLForConditionalGeneration", 152064, 128000, [151645, 151643], "<|im_end|>"),
}
# special tokens whose real ids the stop rules and templates rely on
SPECIAL_IDS = {
    "qwen2.5": {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|file_sep|>": 151664},
    "llama3.1": {"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|start_header_id|>": 128006,
                 "<|eot_id|>": 128009, "<|reserved_special_token_247|>": 128255},
    "r1-distill-qwen-7b": {"<｜end▁of▁sentence｜>": 151643, "<｜User｜>": 151644, "<｜Assistant｜>": 151645,
                           "<｜begin▁of▁sentence｜>": 151646, "<think>": 151648, "</think>": 151649},
    "qwen2.5-vl": {"<|vision_start|>": 151652, "<|image_pad|>": 151655, "<|video_pad|>": 151656},
}


def test_every_family_has_facts():
    assert set(FACTS) == set(replicas.FAMILIES)


@pytest.mark.parametrize("family", sorted(FACTS))
def test_config_tokens_and_generation_config(family):
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    path = built(family)
    arch, vocab, positions, eos, tok_eos = FACTS[family]
    cfg = AutoConfig.from_pretrained(path)
    text = cfg.get_text_config()
    assert cfg.architectures == [arch]
    assert (text.vocab_size, text.max_position_embeddings) == (vocab, positions)
    assert (text.hidden_size, text.num_hidden_layers) == (64, 2)  # tiny
    assert GenerationConfig.from_pretrained(path).eos_token_id == eos
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.eos_token == tok_eos
    ids = SPECIAL_IDS.get(family, SPECIAL_IDS["r1-distill-qwen-7b" if family.startswith("r1") else "qwen2.5"])
    for content, i in ids.items():
        assert tok.convert_tokens_to_ids(content) == i, content
        assert tok(f"a{content}b", add_special_tokens=False)["input_ids"] == [
            tok.convert_tokens_to_ids("a"), i, tok.convert_tokens_to_ids("b")]  # one token inside text
    if family == "llama3.1":
        rope = text.rope_parameters
        assert (rope["rope_type"], rope["factor"], rope["original_max_position_embeddings"]) == ("llama3", 8.0, 8192)
    if family == "qwen2.5-vl":
        assert text.rope_parameters["mrope_section"] == [4, 6, 6] and cfg.image_token_id == 151655


@pytest.mark.parametrize("family", sorted(FACTS))
def test_tokenizer_round_trip_keeps_spaces_and_newlines(family):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built(family))
    text = "Question:\n  Two  spaces,\ttab; \\boxed{\\frac{1}{2}} é 中文\n\nAnswer: 42 "
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert all(i < 256 for i in ids)  # bytes only: no merges, no word-level entries
    with_bos = tok(text)["input_ids"]
    assert (with_bos[0] == 128000) == (family == "llama3.1")  # only Llama 3 prepends its BOS


def _chat(family, content):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(built(family))
    return tok.apply_chat_template([{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)


# what the real chat templates render for one user turn and the generation prompt (their model cards'
# examples: Qwen2.5's default system message, Qwen2.5-Math's boxed system message, R1's <think> prefill)
RENDERED = [
    ("qwen2.5", "hi", "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
                      "<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
    ("qwen2.5-instruct-1m", "hi", "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                                  "assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
    ("qwen2.5-math-instruct", "hi", "<|im_start|>system\nPlease reason step by step, and put your final answer within "
                                    "\\boxed{}.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
    ("r1-distill-qwen-7b", "hi", "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜><think>\n"),
    ("qwen2.5-vl", [{"type": "image"}, {"type": "text", "text": "hi"}],
     "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
     "<|vision_start|><|image_pad|><|vision_end|>hi<|im_end|>\n<|im_start|>assistant\n"),
]


@pytest.mark.parametrize("family,content,expected", RENDERED)
def test_chat_template_renders_what_the_real_one_renders(family, content, expected):
    assert _chat(family, content) == expected


def test_replica_overlay(monkeypatch):
    real = config.load("paper/qwen2.5-math-7b-oat-zero", replicas=False)
    cfg = config.load("paper/qwen2.5-math-7b-oat-zero", replicas=True)
    assert [m.path for m in cfg.models] == ["models/replicas/qwen2.5-math"] * 2
    assert [b.name for b in cfg.benchmarks] == [b.name for b in real.benchmarks]
    for b in cfg.benchmarks:
        assert b.limit == config.REPLICA_PROBLEMS and b.n == config.REPLICA_N
        assert b.source == (str(config.SHARED_BENCHMARKS / b.name) if (config.SHARED_BENCHMARKS / b.name).is_dir() else None)
    assert cfg.sampling.backend == "transformers"  # no vllm in this environment
    assert cfg.sampling.max_new_tokens == config.REPLICA_MAX_NEW_TOKENS and cfg.sampling.temperature == 0.6
    assert cfg.results_dir == config.outputs_root() / "results" / "replica" / cfg.name
    assert cfg.figures_dir.is_relative_to(cfg.results_dir)
    assert ROOT / "models/replicas/qwen2.5-math" in cfg.inputs()
    monkeypatch.setenv(config.REPLICA_ENV, "1")  # what `make ... REPLICA=1` exports to papermill's notebooks
    assert config.load("paper/qwen2.5-math-7b-oat-zero") == cfg
    assert config.load("smoke") == config.load("smoke", replicas=False)  # the miniature has no replicas


def test_replica_overlay_names_a_model_without_replica(monkeypatch):
    monkeypatch.delitem(replicas.HUB, "Qwen/Qwen2.5-7B")
    with pytest.raises(config.ConfigError, match="model 'base': no replica stands for model 'Qwen/Qwen2.5-7B'"):
        config.load("paper/qwen2.5-7b-simplerl", replicas=True)


@pytest.mark.parametrize("name", TEXT_PAPER)
def test_text_paper_experiment_runs_on_replicas_with_transformers(name, tmp_path, monkeypatch):
    """Every model loads in turn and every benchmark is sampled and graded (one problem, two samples of
    four tokens here: the overlay's own sizes are for `make all REPLICA=1`)."""
    monkeypatch.setenv(config.OUTPUTS_ENV, str(tmp_path))
    cfg = config.load(name, replicas=True)
    for m in cfg.models:
        built(Path(m.path).name)
    cfg = cfg.model_copy(update={"benchmarks": [b.model_copy(update={"limit": 1, "n": 2}) for b in cfg.benchmarks],
                                 "sampling": cfg.sampling.model_copy(update={"max_new_tokens": 4})})
    log = runs.sample(cfg, progress=False)
    assert set(log.backend) == {"transformers"}
    assert set(log.model) == {m.label for m in cfg.models}  # each model loaded and asked
    verdicts = runs.grade(cfg, progress=False)
    expected = {(m.label, b.name) for m, b in runs.pairs(cfg)}
    assert set(zip(verdicts.model, verdicts.benchmark)) == expected
    assert (verdicts.groupby(["model", "benchmark"]).size() == 2).all()
    assert verdicts.status.notna().all() and (runs.samples(cfg).completion_tokens <= 4).all()


def test_qwen25_vl_replica_refuses_the_transformers_backend(tmp_path, monkeypatch):
    from boundary.sampling.backends import TransformersBackend

    with pytest.raises(NotImplementedError, match="multimodal rotary positions .* use the vllm backend"):
        TransformersBackend(built("qwen2.5-vl"), device="cpu")
    monkeypatch.setenv(config.OUTPUTS_ENV, str(tmp_path))
    cfg = config.load("paper/qwen2.5-vl-7b-easyr1", replicas=True)  # no vLLM here: the transformers backend
    with pytest.raises(NotImplementedError, match="qwen2_5_vl uses multimodal rotary positions"):
        runs.sample(cfg, progress=False)


# ---- the rambling replica: answers, ends its turn, then invents another turn with another \boxed{}
def ramble_experiment(tmp_path, backend="transformers"):
    """A one-problem experiment on the rambling replica under qwen-boxed (results under tmp_path)."""
    built(replicas.RAMBLE)
    source = tmp_path / "gsm8k.jsonl"
    source.write_text(json.dumps(replicas.RAMBLE_ROW) + "\n")
    return config.Experiment.model_validate({
        "name": "ramble", "models": [{"label": "base", "role": "base", "template": replicas.RAMBLE_TEMPLATE,
                                      "path": str(replicas.folder(replicas.RAMBLE).relative_to(ROOT))}],
        "benchmarks": [{"name": "gsm8k", "source": str(source), "n": 4}],
        "sampling": {"backend": backend, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 64, "seed": 0}})


def test_rambling_replica_rambles_past_its_turn():
    """The independent truth behind the stop-rule test: left alone (its generation config's EOS only),
    the replica writes its answer, <|im_end|>, then an invented turn with another boxed answer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = built(replicas.RAMBLE)
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    prompt = tok(templates.render(replicas.RAMBLE_TEMPLATE, replicas.ramble_problem()), return_tensors="pt")
    out = model.generate(**prompt, max_new_tokens=64, do_sample=False)[0, prompt["input_ids"].shape[1]:]
    assert tok.decode(out) == (replicas.RAMBLE_ANSWER + "<|im_end|>" + replicas.RAMBLE_INVENTED + "<|endoftext|>")
    assert model.generation_config.eos_token_id == 151643  # <|endoftext|>: <|im_end|> does not stop it


def check_first_turn_only(cfg):
    """The stored samples end with the first turn and are graded on the problem asked."""
    runs.sample(cfg, progress=False)
    stored = runs.samples(cfg)
    assert len(stored) == 4
    assert (stored.text.str.strip() == replicas.RAMBLE_ANSWER).all(), stored.text.tolist()
    assert (stored.finish_reason == "stop").all()
    verdicts = runs.grade(cfg, progress=False)
    assert verdicts.correct.all(), verdicts[["extracted", "status"]].to_dict("records") if "extracted" in verdicts else verdicts


def test_rambling_sample_ends_with_its_first_turn_transformers(tmp_path, monkeypatch):
    monkeypatch.setenv(config.OUTPUTS_ENV, str(tmp_path))
    check_first_turn_only(ramble_experiment(tmp_path))


def test_build_is_deterministic(tmp_path):
    """`make replicas` writes the same weights and tokenizer every time (here: the Llama 3.1 family, the
    fastest to build, against the folder `make replicas` wrote)."""
    from safetensors.torch import load_file

    made = built("llama3.1")
    again = replicas.build("llama3.1", tmp_path)
    ours, theirs = load_file(again / "model.safetensors"), load_file(made / "model.safetensors")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert (again / "tokenizer.json").read_bytes() == (made / "tokenizer.json").read_bytes()
    assert json.loads((again / "generation_config.json").read_text())["eos_token_id"] == 128001
