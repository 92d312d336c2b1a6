"""Stop rules (boundary.sampling.stops) on tokenizers with real models' special tokens, ids and chat
templates; what the rule does to the store key; and the cut of a rambling completion."""
import hashlib
import json
from dataclasses import replace

import pytest
from tiny_lm import char_tokenizer

from boundary import config, runs, tasks
from boundary.sampling import StopRule, stop_rule
from boundary.sampling import stops
from boundary.sampling.backends import cut_at_stop
from boundary.tasks import templates

# Qwen2.5 (Qwen/Qwen2.5-7B tokenizer.json, generation_config.json): vocabulary 151,643 + specials.
QWEN_SPECIALS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
# Qwen2.5-7B-Instruct's chat template without its tool-call branches (default system message as there).
QWEN_CHAT = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
# Llama-3.1 (meta-llama/Llama-3.1-8B[-Instruct]): vocabulary 128,000 + 256 reserved specials.
LLAMA_SPECIALS = {"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|start_header_id|>": 128006,
                  "<|end_header_id|>": 128007, "<|eom_id|>": 128008, "<|eot_id|>": 128009}
# Llama-3.1-8B-Instruct's chat template without its tool and date branches.
LLAMA_CHAT = (
    "{{- bos_token }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")


def byte_bpe(specials: dict[str, int], size: int, eos: str, bos: str | None = None, chat_template: str | None = None):
    """A byte-level BPE tokenizer without merges: the 256 byte symbols, unreachable fillers, and the
    special tokens at their real ids (so every id a rule names is the real model's)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    names = symbols + [f"<filler{i}>" for i in range(len(symbols), size)]
    for text, i in specials.items():
        names[i] = text
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(names)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, bos_token=bos, chat_template=chat_template)


def checkpoint(folder, tokenizer, eos_token_id):
    """A folder with the tokenizer and a generation config (what stop_rule reads of a checkpoint)."""
    from transformers import GenerationConfig

    tokenizer.save_pretrained(folder)
    GenerationConfig(eos_token_id=eos_token_id).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def qwen_base(tmp_path_factory):
    # Qwen2.5-7B (base): tokenizer EOS <|endoftext|>, generation config eos 151643 only, ChatML template kept
    tok = byte_bpe(QWEN_SPECIALS, 151646, eos="<|endoftext|>", chat_template=QWEN_CHAT)
    return checkpoint(tmp_path_factory.mktemp("qwen-base"), tok, 151643)


@pytest.fixture(scope="module")
def qwen_instruct(tmp_path_factory):
    # Qwen2.5-7B-Instruct: tokenizer EOS <|im_end|>, generation config eos [151645, 151643]
    tok = byte_bpe(QWEN_SPECIALS, 151646, eos="<|im_end|>", chat_template=QWEN_CHAT)
    return checkpoint(tmp_path_factory.mktemp("qwen-instruct"), tok, [151645, 151643])


@pytest.fixture(scope="module")
def llama_base(tmp_path_factory):
    # Llama-3.1-8B (base): EOS <|end_of_text|>, generation config eos 128001, no chat template
    tok = byte_bpe(LLAMA_SPECIALS, 128256, eos="<|end_of_text|>", bos="<|begin_of_text|>")
    return checkpoint(tmp_path_factory.mktemp("llama-base"), tok, 128001)


@pytest.fixture(scope="module")
def llama_instruct(tmp_path_factory):
    # Llama-3.1-8B-Instruct: EOS <|eot_id|>, generation config eos [128001, 128008, 128009]
    tok = byte_bpe(LLAMA_SPECIALS, 128256, eos="<|eot_id|>", bos="<|begin_of_text|>", chat_template=LLAMA_CHAT)
    return checkpoint(tmp_path_factory.mktemp("llama-instruct"), tok, [128001, 128008, 128009])


def test_qwen_base_under_qwen_boxed_stops_at_the_chatml_markers(qwen_base):
    # <|im_end|> ends the turn though the generation config names only <|endoftext|>
    assert stop_rule(qwen_base, "qwen-boxed") == StopRule(token_ids=(151643, 151644, 151645), strings=())


def test_qwen_instruct_chat_end_of_turn_is_found_by_rendering(qwen_instruct):
    assert stops.end_of_turn(stops.load_tokenizer(qwen_instruct)[0]) == 151645
    assert stop_rule(qwen_instruct, "chat") == StopRule(token_ids=(151643, 151645), strings=())
    assert stop_rule(qwen_instruct, "chat", kind="code") == stop_rule(qwen_instruct, "chat")


def test_llama_instruct_chat_ends_at_eot(llama_instruct):
    assert stops.end_of_turn(stops.load_tokenizer(llama_instruct)[0]) == 128009
    assert stop_rule(llama_instruct, "chat") == StopRule(token_ids=(128001, 128008, 128009), strings=())


def test_llama_base_under_abel_stops_before_a_new_question(llama_base):
    assert stop_rule(llama_base, "abel") == StopRule(token_ids=(128001,), strings=("Question:",))


def test_chatml_markers_a_tokenizer_lacks_become_strings(llama_base):
    # qwen-boxed's ChatML text on Llama's tokenizer: <|im_end|> is many tokens there, so a stop string
    rule = stop_rule(llama_base, "qwen-boxed")
    assert rule == StopRule(token_ids=(128001,), strings=("<|im_end|>", "<|im_start|>"))


def test_chat_without_a_chat_template_is_an_error(llama_base):
    with pytest.raises(ValueError, match="has none"):
        stop_rule(llama_base, "chat")


def test_a_template_closing_turns_with_text_adds_nothing():
    tok = char_tokenizer()  # tiny_lm's template ends an assistant turn with "\n", an ordinary character
    assert stops.end_of_turn(tok) is None
    assert stops.rule_for(tok, None, "chat") == StopRule(token_ids=(tok.eos_token_id,), strings=())


@pytest.mark.parametrize("benchmark, expected", [
    ("humaneval_plus", ("\nif __name__", "\ndef main(", "\nprint(", "\ndef ", "\nclass ", "\nimport ", "\nfrom ",
                        "\nassert ")),  # evalplus EOS + its HumanEval extras
    ("mbpp_plus", ("\nif __name__", "\ndef main(", "\nprint(", '\n"""', "\nassert")),  # evalplus EOS + MBPP extras
    ("livecodebench", ("You are an expert Python programmer",)),  # a stdin program may define main(): not evalplus's
])
def test_plain_code_completions_use_evalplus_stops(llama_base, benchmark, expected):
    assert stop_rule(llama_base, "plain", kind="code", benchmark=benchmark).strings == expected


@pytest.mark.parametrize("args, match", [
    (("plain", "code"), "not benchmark None"),  # plain code needs the benchmark
    (("abel", "code"), "does not render code"),  # abel has no code prompt
    (("qwen-boxed", "audio"), "kind 'audio'"),  # unknown kind
    (("nonesuch", "math"), "no prompt template"),  # unknown template
])
def test_bad_arguments_name_the_culprit(llama_base, args, match):
    with pytest.raises((ValueError, tasks.TaskError), match=match):
        stop_rule(llama_base, *args)


# The DAPO prompt (BytedTsinghua-SIA/DAPO-Math-17k), as issue 13's `dapo` completion template renders it.
DAPO = templates.Template(
    "dapo", "plain", "Solve the following math problem step by step. The last line of your response should be of "
    "the form Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n{question}\n\n"
    "Remember to put your answer on its own line after \"Answer:\".", code=False, visual=False)


@pytest.fixture
def dapo(monkeypatch):
    """The `dapo` template: issue 13's where it exists, else the DAPO prompt built here."""
    if "dapo" not in templates.TEMPLATES:
        monkeypatch.setitem(templates.TEMPLATES, "dapo", DAPO)
    return templates.get("dapo")


# (template, a well-formed answer in the template's asked-for format, then the model rambling on, the
# invented problem's answer, whether the stop comes before the invented problem's text)
RAMBLES = [
    ("abel", "2 + 3 = 5, so the answer is \\boxed{5}.", "\n\nQuestion:\nWhat is 7 - 1?\nAnswer:\n7 - 1 = \\boxed{6}.",
     "\\boxed{6}", True),
    # plain math opens a problem with the question itself: only the instruction after it marks a new one
    ("plain", "2 + 3 = 5, so the answer is \\boxed{5}.",
     "\n\nWhat is 7 - 1?\nPlease reason step by step, and put your final answer within \\boxed{}.\n\\boxed{6}",
     "\\boxed{6}", False),
    ("dapo", "2 + 3 = 5.\nAnswer: 5",
     "\n\nSolve the following math problem step by step. The last line of your response should be of the form "
     "Answer: $Answer (without quotes)\n\nWhat is 7 - 1?\n\n7 - 1 = 6.\nAnswer: 6", "Answer: 6", True),
]


@pytest.mark.parametrize("template, answer, ramble, invented, before", RAMBLES)
def test_completion_stops_keep_the_answer_line_and_cut_the_invented_problem(dapo, llama_base, template, answer, ramble,
                                                                            invented, before):
    tok = char_tokenizer()  # one token per character: the cut is exact
    rule = stop_rule(llama_base, template)
    text, _, cut = cut_at_stop(tok, tok(answer + ramble, add_special_tokens=False)["input_ids"], rule.strings)
    assert cut and text.startswith(answer), "the answer line asked for survives whole"
    assert invented not in text, "the invented problem's answer is cut, so the last answer is the asked one's"
    assert (text.rstrip() == answer) == before


def test_the_official_dapo_stop_would_cut_the_answer_line(dapo):
    tok = char_tokenizer()
    _, answer, ramble, _, _ = RAMBLES[2]
    text, _, _ = cut_at_stop(tok, tok(answer + ramble, add_special_tokens=False)["input_ids"], ["Answer:"])
    assert "Answer: 5" not in text  # why `dapo` does not stop at "Answer:"
    for name, *_ in RAMBLES:  # and no completion stop is part of the answer format its template asks for
        assert not any(s in "Answer: 5" or s in "\\boxed{5}" for s in stops.COMPLETION_STOPS[name, "math"])


def test_keyed_part_is_what_the_rule_adds_to_the_models_eos(qwen_base, qwen_instruct):
    rule, keyed = stops.keyed_rule(qwen_base, "qwen-boxed")
    assert keyed == (("stop_token_ids", (151644, 151645)),)  # <|endoftext|> is the model's own, keyed by identity
    _, keyed = stops.keyed_rule(qwen_instruct, "chat")
    assert keyed == (), "<|im_end|> is already an EOS of the instruct model's generation config"
    assert StopRule((1,), ("x",)).keyed((1,)) == (("stop_strings", ("x",)),)


def old_digest(key) -> str:
    """The store key's digest as it was computed before stop rules and windows (five fields)."""
    fields = {"model": key.model, "model_version": key.model_version, "template_sha256": key.template_sha256,
              "backend": key.backend, "sampling": key.sampling}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=list).encode()).hexdigest()[:16]


@pytest.mark.parametrize("build, template, kind", [
    ("text", "chat-question", "math"),  # the miniature's text family
    ("vision", "chat-image", "visual"),  # its LLaVA pair: a content-list chat template
])
def test_the_miniature_rule_is_its_eos_alone(build, template, kind):
    from boundary.miniature import tokenizer as mini_tokenizer
    from boundary.miniature import vision

    tok = mini_tokenizer.build() if build == "text" else vision.processor().tokenizer
    assert stops.end_of_turn(tok) == tok.eos_token_id  # "<assistant>...<eos>": the turn ends with EOS
    rule = stops.rule_for(tok, None, template, kind)
    assert rule == StopRule(token_ids=(tok.eos_token_id,), strings=()) and rule.keyed((tok.eos_token_id,)) == ()


@pytest.mark.parametrize("experiment", ["smoke", "miniature"])
def test_the_miniature_store_keys_are_unchanged(experiment):
    cfg = config.load(experiment)
    missing = [m.path for m in cfg.models if not cfg.resolve(m.path).is_dir()]
    if missing:
        pytest.skip(f"{missing} absent (make models EXPERIMENT={experiment})")
    seen = list(runs.runs(cfg))
    assert len(seen) == len(runs.pairs(cfg))
    for run in seen:
        assert run.store.key.extra == (), f"{run.model.label}: the miniature's rule adds nothing to its EOS"
        assert run.store.key.digest() == old_digest(run.store.key), run.model.label
        assert run.stop.token_ids == (stops.load_tokenizer(run.model.path)[0].eos_token_id,)


def test_an_explicit_window_and_a_rule_re_key(qwen_base):
    from boundary.store import make_key

    sampling = config.Sampling()
    plain = make_key(qwen_base, "t", "vllm", sampling)
    assert plain.digest() == old_digest(plain) and "extra" not in plain.fields()
    _, keyed = stops.keyed_rule(qwen_base, "qwen-boxed")
    ruled = make_key(qwen_base, "t", "vllm", sampling, stops=keyed)
    windowed = make_key(qwen_base, "t", "vllm", sampling, max_model_len=4096)
    assert len({plain.digest(), ruled.digest(), windowed.digest()}) == 3
    assert replace(windowed, extra=()) == plain
