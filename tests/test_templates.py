"""boundary.tasks.templates: each template renders the reference code's exact string, hashes are stable."""
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from boundary import tasks
from boundary.tasks import Problem, TaskError, templates

# Verbatim from Qwen2.5-Math evaluation/utils.py PROMPT_TEMPLATES (the paper's evaluation code);
# rendered there as input_template.format(input=question).strip(" ").
QWEN_BOXED = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n{input}\nPlease reason step by step, and put your final answer within \\boxed{{}}.<|im_end|>\n"
    "<|im_start|>assistant\n"
)
MATHSTRAL = "{input}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
ABEL = "Question:\n{input}\nAnswer:\nLet's think step by step.\n"  # the OLD abel, commented out there
# limit-of-RLVR math/examples/math_eval/utils.py PROMPT_TEMPLATES["abel"][0], the live entry (DAPO's prompt),
# copied character for character from that file at commit fd2cf37.
DAPO = (
    "A conversation between user and assistant. The user asks a question, and the assistant solves it. The time limit "
    "is set to 20,480 tokens. If the assistant's response exceeds this limit, a progressively increasing penalty with "
    "the number of tokens exceeded will be applied.\nuser\nSolve the following math problem step by step. The last "
    "line of your response should be of the form Answer: $Answer (without quotes) where $Answer is the answer to the "
    "problem.\n{input}\nRemember to put your answer on its own line after \"Answer:\".\nassistant"
)

# A ChatML chat template like Qwen2.5-Instruct's (default system message, image placeholders as
# Qwen2.5-VL writes them), on a tokenizer built here: no download needed.
CHATML = (
    "{{ bos_token }}{% for m in messages %}{% if loop.first and m['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tokenizer(chat_template: str | None = CHATML) -> PreTrainedTokenizerFast:
    """A word-level tokenizer that adds a BOS "<s>" (id 1) and has `chat_template`."""
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "<s>": 1, "x": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="<s>")
    fast.chat_template = chat_template
    return fast


QUESTION = "What is $\\frac{1}{2} + \\frac{1}{3}$? Answer {in} braces."  # braces must survive rendering
MATH = Problem(id="t/1", benchmark="t", question=QUESTION, gold="\\frac{5}{6}", answer_type="math")
HUMANEVAL = Problem(id="t/2", benchmark="t", question='def f(x):\n    """Return x."""\n', gold=None,
                    answer_type="code", tests={"format": "humaneval"})
STDIN = Problem(id="t/3", benchmark="t", question="Print N.", gold=None, answer_type="code",
                tests={"format": "stdin", "starter_code": None})
FUNCTIONAL = Problem(id="t/4", benchmark="t", question="Return n.", gold=None, answer_type="code",
                     tests={"format": "functional", "starter_code": "class Solution:\n    def f(self, n: int) -> int:\n        "})
VISUAL = Problem(id="t/5", benchmark="t", question="How many?\n<image1>", gold="6", answer_type="math",
                 image=b"\xff\xd8", meta={"visual": True})
LCB_STDIN_TEXT = (  # rllm fetch_live_code_bench_system_prompt(question, None)
    "You are an expert Python programmer. You will be given a question (problem specification) and will generate a "
    "correct Python program that matches the specification and passes all tests.\n\nPrint N.### Format: Read the "
    "inputs from stdin solve the problem and write the answer to stdout (do not directly test on the sample inputs). "
    "Enclose your code within delimiters as follows. Ensure that when the python program runs, it reads the inputs, "
    "runs the algorithm and writes output to STDOUT.\n```python\n# YOUR CODE HERE\n```\n\n"
    "### Answer: (use the provided format with backticks)\n\n"
)
SYSTEM = "<s><|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"

# (template, problem, the exact expected prompt): each template's string for a known question
RENDERED = [
    ("qwen-boxed", MATH, QWEN_BOXED.format(input=QUESTION).strip(" ")),  # the paper's prompt
    ("plain", MATH, MATHSTRAL.format(input=QUESTION)),  # Qwen2.5-Math "mathstral" completion
    ("abel", MATH, ABEL.format(input=QUESTION)),  # SimpleRL-Zoo's prompt for Llama/Mistral
    ("dapo", MATH, DAPO.format(input=QUESTION).strip(" ")),  # the DAPO prompt of the official evaluation
    ("chat", MATH, "<s>" + QWEN_BOXED.format(input=QUESTION)),  # a ChatML model's own template
    ("chat", HUMANEVAL, SYSTEM + "<|im_start|>user\nPlease provide a self-contained Python script that solves the "
     "following problem in a markdown code block:\n```\ndef f(x):\n    \"\"\"Return x.\"\"\"\n```\n<|im_end|>\n"
     "<|im_start|>assistant\nBelow is a Python script with a self-contained function that solves the problem and "
     "passes corresponding tests:\n```python\n"),  # evalplus make_raw_chat_prompt, prefilled reply
    ("plain", HUMANEVAL, 'def f(x):\n    """Return x."""\n'),  # evalplus direct completion
    ("chat", STDIN, SYSTEM + "<|im_start|>user\n" + LCB_STDIN_TEXT + "<|im_end|>\n<|im_start|>assistant\n"),
    ("plain", FUNCTIONAL, LCB_STDIN_TEXT.split("Print N.")[0] + "Return n.### Format: You will use the following "
     "starter code to write the solution to the problem and enclose your code within delimiters.\n```python\n"
     "class Solution:\n    def f(self, n: int) -> int:\n        \n```\n\n"
     "### Answer: (use the provided format with backticks)\n\n"),  # rllm, with starter code
    ("chat", VISUAL, SYSTEM + "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>How many?\n<image1> "
     "You FIRST think about the reasoning process as an internal monologue and then provide the final answer. "
     "The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST BE put in "
     "\\boxed{}.<|im_end|>\n<|im_start|>assistant\n"),  # Qwen2.5-VL layout + EasyR1 math.jinja
]


@pytest.mark.parametrize("name,problem,expected", RENDERED)
def test_templates_render_the_reference_strings(name, problem, expected):
    assert tasks.render(name, problem, make_tokenizer()) == expected


@pytest.mark.shared
def test_qwen_boxed_on_a_real_gsm8k_question(shared):
    (p,) = tasks.load("gsm8k", source=shared("data", "benchmarks", "gsm8k"), limit=1)
    assert tasks.render("qwen-boxed", p) == QWEN_BOXED.format(input=p.question).strip(" ")
    assert "<|im_start|>user\nJanet’s ducks lay 16 eggs per day." in tasks.render("qwen-boxed", p)


# (template, problem, tokenizer, expected error): templates refuse what they cannot render
REFUSED = [
    ("qwen-boxed", HUMANEVAL, None, "does not render code problems"),  # a math-only template
    ("plain", VISUAL, None, "does not render visual problems"),  # no image without a chat template
    ("chat", MATH, None, "pass its tokenizer"),  # the model's template needs its tokenizer
    ("chat", MATH, "no-template", "has no chat template"),  # a base model's tokenizer
    ("qwen-bxed", MATH, None, "no prompt template 'qwen-bxed'"),  # a typo
]


@pytest.mark.parametrize("name,problem,tokenizer,message", REFUSED)
def test_templates_refuse_what_they_cannot_render(name, problem, tokenizer, message):
    tok = make_tokenizer(None) if tokenizer == "no-template" else tokenizer
    with pytest.raises(TaskError, match=message):
        tasks.render(name, problem, tok)


# template -> its hash: changing a template's text must change these (and then this table, knowingly)
HASHES = [
    ("qwen-boxed", "7d15c8361c0b4874"),
    ("chat", "d065442271d172cc"),
    ("plain", "66fd674530616cde"),
    ("abel", "ba21d3b8c780a768"),
    ("dapo", "c375ffcb85a556b4"),
]


@pytest.mark.parametrize("name,expected", HASHES)
def test_template_hashes_are_stable(name, expected):
    assert tasks.template_hash(name) == expected


def test_template_hashes_differ_and_follow_the_text(monkeypatch):
    assert len({tasks.template_hash(n) for n in tasks.TEMPLATES}) == len(tasks.TEMPLATES)
    before = tasks.template_hash("chat")
    monkeypatch.setattr(templates, "EASYR1_MATH", templates.EASYR1_MATH + " ")
    assert tasks.template_hash("chat") != before  # a visual prompt edit changes the chat hash


def test_encode_adds_special_tokens_only_outside_chat_templates():
    tok = make_tokenizer()
    assert tasks.encode("plain", MATH, tok)[0] == 1  # the tokenizer's BOS, as vLLM adds to text prompts
    chat = tasks.encode("chat", MATH, tok)
    assert chat[0] == 1 and chat[1] != 1  # the template's own BOS, not doubled


def test_a_pair_must_share_its_template():
    from boundary.config import Model

    base = Model(label="base", role="base", path="a/b", template="qwen-boxed")
    assert tasks.same_for_pair([base, Model(label="rl", role="rl", path="a/c", template="qwen-boxed")]) == "qwen-boxed"
    with pytest.raises(TaskError, match="a pair must share its template"):
        tasks.same_for_pair([base, Model(label="rl", role="rl", path="a/c", template="chat")])
