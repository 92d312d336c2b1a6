"""Prompt templates: how a `Problem` becomes the text a model continues, and its stable hash.

A base model and its RL version are prompted with the same template (as in the paper), so a
difference in pass@k is the models', not the prompts'. A template's hash enters the sample-store
key: change a template's text and its samples are no longer mixed with the old ones.

Templates (`TEMPLATES`):
- "qwen-boxed": the paper's math prompt, verbatim from Qwen2.5-Math `evaluation/utils.py`
  PROMPT_TEMPLATES["qwen-boxed"] (used by limit-of-RLVR and SimpleRL-Zoo): ChatML, system
  "You are a helpful assistant.", the question, "\\nPlease reason step by step, and put your final
  answer within \\\\boxed{}.", then the open assistant turn; the whole `.strip(" ")` as there.
- "chat": the model's own chat template (`tokenizer.apply_chat_template`). Math: the question and
  the same boxed instruction as the user turn. Code: evalplus's instruct prompt for HumanEval+/MBPP+
  (evalplus `provider/utility.py make_raw_chat_prompt`: instruction, the task in a fence, and the
  assistant turn pre-filled up to "```python\\n"); LiveCodeBench as DeepCoder/rllm builds it
  (`fetch_live_code_bench_system_prompt`, LiveCodeBench's generic prompt behind its system
  message). Visual: the image, then the question and EasyR1's math format prompt (its
  `examples/format_prompt/math.jinja`: content, a space, the <think>/\\boxed instruction).
- "plain": completion for base models without a chat template. Math: question + "\\n" + the boxed
  instruction (Qwen2.5-Math's "mathstral" template); HumanEval+/MBPP+: evalplus's direct completion
  (the task prompt stripped, then "\\n"); LiveCodeBench: the rllm prompt text as is.
- "chat-question": the model's own chat template with the bare question as the user turn, for
  models trained on prompts without an instruction (the miniature family, whose chat template
  already frames the task and whose character vocabulary has no letters for the instruction).
- "chat-image": "chat-question" for vision-language models: the image, then the bare question (no
  EasyR1 format prompt), for the miniature VLM family trained on such prompts. (A template of its
  own rather than "chat-question" made visual, so the text family's store keys do not change.)
- "abel": Qwen2.5-Math's "abel" completion template ("Question:\\n{q}\\nAnswer:\\nLet's think step by
  step.\\n"), the simple prompt SimpleRL-Zoo uses for Llama and Mistral base models. This is the
  OLD "abel" entry: the official limit-of-RLVR evaluation (math/examples/math_eval/utils.py) keeps
  it there commented out, and its live "abel" entry is the DAPO prompt, our "dapo".
- "dapo": the DAPO prompt, verbatim from that live "abel" entry of limit-of-RLVR
  math/examples/math_eval/utils.py (DAPO's old-version prompt, `inference/example.json` of
  BytedTsinghua-SIA/DAPO-Qwen-32B at 38b8075); its math/README runs the DAPO models and their base
  with it (`--template abel`). A completion prompt ("...user\\n...\\nassistant", no chat template),
  `.strip(" ")` as there. Responses end in an "Answer: X" line, which the grader reads first.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

from boundary.tasks.problem import Problem, TaskError

RENDER_VERSION = 1  # bump when the rendering code changes what a template produces (enters the hash)

QWEN_SYSTEM = "You are a helpful assistant."  # qwen-boxed's system message
BOXED = "Please reason step by step, and put your final answer within \\boxed{}."  # the paper's instruction
# evalplus codegen instruct prompts (evalplus/codegen.py defaults).
EVALPLUS_INSTRUCTION = ("Please provide a self-contained Python script that solves the following problem "
                        "in a markdown code block:")
EVALPLUS_RESPONSE = ("Below is a Python script with a self-contained function that solves the problem and "
                     "passes corresponding tests:")
EVALPLUS_SPLITTER = "-[[]]-this-is-really-our-highest-priority-[[]]-"  # evalplus _MAGIC_SPLITTER_
# LiveCodeBench prompt strings as rllm (DeepCoder) defines them in rllm/system_prompts.py.
LCB_SYSTEM = ("You are an expert Python programmer. You will be given a question (problem specification) and "
              "will generate a correct Python program that matches the specification and passes all tests.")
LCB_WITH_STARTER = ("You will use the following starter code to write the solution to the problem and enclose "
                    "your code within delimiters.")
LCB_WITHOUT_STARTER = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not "
                       "directly test on the sample inputs). Enclose your code within delimiters as follows. "
                       "Ensure that when the python program runs, it reads the inputs, runs the algorithm and "
                       "writes output to STDOUT.")
# The DAPO prompt: limit-of-RLVR math/examples/math_eval/utils.py, PROMPT_TEMPLATES["abel"][0] (the live
# entry), with "{input}" written "{question}"; every other character verbatim.
DAPO = ("A conversation between user and assistant. The user asks a question, and the assistant solves it. The "
        "time limit is set to 20,480 tokens. If the assistant's response exceeds this limit, a progressively "
        "increasing penalty with the number of tokens exceeded will be applied.\nuser\nSolve the following math "
        "problem step by step. The last line of your response should be of the form Answer: $Answer (without "
        "quotes) where $Answer is the answer to the problem.\n{question}\nRemember to put your answer on its own "
        "line after \"Answer:\".\nassistant")
# EasyR1 examples/format_prompt/math.jinja, appended to the question of a visual problem.
EASYR1_MATH = ("You FIRST think about the reasoning process as an internal monologue and then provide the final "
               "answer. The reasoning process MUST BE enclosed within <think> </think> tags. The final answer "
               "MUST BE put in \\boxed{}.")


@dataclass(frozen=True)
class Template:
    """A prompt template; every string it uses is a field, so the hash covers all of it."""

    name: str  # its name in params (`models[].template`)
    wrap: Literal["chatml", "chat", "plain"]  # fixed ChatML text, the tokenizer's chat template, or none
    math: str | None  # the math prompt text, "{question}" filled in; None: renders no math
    code: bool  # renders code problems (evalplus and LiveCodeBench prompts)
    visual: bool  # renders image problems (chat templates only)
    system: str | None = None  # "chatml": the system message


TEMPLATES: dict[str, Template] = {
    "qwen-boxed": Template("qwen-boxed", "chatml", "{question}\n" + BOXED, code=False, visual=False,
                           system=QWEN_SYSTEM),
    "chat": Template("chat", "chat", "{question}\n" + BOXED, code=True, visual=True),
    "chat-question": Template("chat-question", "chat", "{question}", code=False, visual=False),
    "chat-image": Template("chat-image", "chat", "{question}", code=False, visual=True),
    "plain": Template("plain", "plain", "{question}\n" + BOXED, code=True, visual=False),
    # The OLD "abel" of the official evaluation (commented out there; its live "abel" is "dapo" below).
    "abel": Template("abel", "plain", "Question:\n{question}\nAnswer:\nLet's think step by step.\n",
                     code=False, visual=False),
    "dapo": Template("dapo", "plain", DAPO, code=False, visual=False),
}


def get(name: str) -> Template:
    """The template called `name`; a TaskError listing the known ones otherwise."""
    if name not in TEMPLATES:
        raise TaskError(f"no prompt template {name!r}; known: {', '.join(sorted(TEMPLATES))}")
    return TEMPLATES[name]


def template_hash(name: str) -> str:
    """A stable 16-hex-digit hash of everything that decides the template's text (sample-store key)."""
    t = get(name)
    spec = {"render_version": RENDER_VERSION, **asdict(t)}
    if t.code:
        spec["code"] = [EVALPLUS_INSTRUCTION, EVALPLUS_RESPONSE, LCB_SYSTEM, LCB_WITH_STARTER, LCB_WITHOUT_STARTER]
    if t.visual and t.math != "{question}":  # bare-question templates do not use the format prompt
        spec["visual"] = EASYR1_MATH
    blob = json.dumps(spec, sort_keys=True, ensure_ascii=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def covers(name: str, kind: str) -> bool:
    """Whether template `name` renders problems of `kind` ("math", "code" or "visual")."""
    t = get(name)
    return {"math": t.math is not None, "code": t.code, "visual": t.visual}[kind]


def _kind(problem: Problem) -> str:
    return "code" if problem.answer_type == "code" else "visual" if problem.visual else "math"


def _chat(tokenizer, messages: list[dict], name: str, **kwargs) -> str:
    """The tokenizer's chat template applied to `messages` (text, not tokens)."""
    if tokenizer is None:
        raise TaskError(f"template {name!r} renders through the model's chat template: pass its tokenizer")
    if not getattr(tokenizer, "chat_template", None):
        raise TaskError(f"template {name!r}: the tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat "
                        "template (a base model?): use 'plain', 'abel' or 'qwen-boxed'")
    return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)


def lcb_prompt(problem: Problem) -> str:
    """LiveCodeBench prompt text as rllm's fetch_live_code_bench_system_prompt builds it."""
    starter = problem.tests.get("starter_code")
    text = LCB_SYSTEM + "\n\n" + problem.question
    if starter:
        text += f"### Format: {LCB_WITH_STARTER}\n```python\n{starter}\n```\n\n"
    else:
        text += f"### Format: {LCB_WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
    return text + "### Answer: (use the provided format with backticks)\n\n"


def _code(t: Template, problem: Problem, tokenizer) -> str:
    """Code prompts: evalplus for HumanEval+/MBPP+, rllm's LiveCodeBench prompt otherwise."""
    if problem.tests["format"] in ("humaneval", "mbpp"):
        if t.wrap == "plain":
            return problem.question.strip() + "\n"
        user = f"{EVALPLUS_INSTRUCTION}\n```\n{problem.question.strip()}\n```\n"
        prefill = f"{EVALPLUS_RESPONSE}\n```python\n{EVALPLUS_SPLITTER}\n```\n"
        text = _chat(tokenizer, [{"role": "user", "content": user}, {"role": "assistant", "content": prefill}], t.name)
        return text.split(EVALPLUS_SPLITTER)[0]
    if t.wrap == "plain":
        return lcb_prompt(problem)
    return _chat(tokenizer, [{"role": "user", "content": lcb_prompt(problem)}], t.name, add_generation_prompt=True)


def visual_text(problem: Problem, bare: bool = False) -> str:
    """The text beside the image: question, options as "(A) ..." lines if any, EasyR1's format prompt
    (left out when `bare`: templates whose math prompt is the bare question, e.g. "chat-image")."""
    text = problem.question.strip()
    if problem.choices:
        text += "\n" + "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(problem.choices))
    return text if bare else f"{text} {EASYR1_MATH}"


def render(name: str, problem: Problem, tokenizer=None) -> str:
    """The prompt text of `problem` under template `name`. Chat templates need the model's
    `tokenizer` (or processor, for vision models). A TaskError when the template does not cover the
    problem's kind (math, code, visual) or a visual problem has no image."""
    t = get(name)
    kind = _kind(problem)
    if not covers(name, kind):
        usable = [n for n in TEMPLATES if covers(n, kind)]
        raise TaskError(f"template {name!r} does not render {kind} problems ({problem.id}); use one of {usable}")
    if kind == "code":
        return _code(t, problem, tokenizer)
    if kind == "visual":
        if problem.image is None:
            raise TaskError(f"{problem.id}: no image to prompt with ({problem.meta.get('image_path')!r} was not "
                            "found when loading): load the benchmark from a folder with its images/")
        content = [{"type": "image"}, {"type": "text", "text": visual_text(problem, bare=t.math == "{question}")}]
        return _chat(tokenizer, [{"role": "user", "content": content}], name, add_generation_prompt=True)
    text = t.math.replace("{question}", problem.question)  # not str.format: \\boxed{} has braces
    if t.wrap == "chatml":
        return (f"<|im_start|>system\n{t.system}<|im_end|>\n<|im_start|>user\n{text}<|im_end|>\n"
                "<|im_start|>assistant\n").strip(" ")
    if t.wrap == "chat":
        return _chat(tokenizer, [{"role": "user", "content": text}], name, add_generation_prompt=True)
    return text.strip(" ")


def encode(name: str, problem: Problem, tokenizer) -> list[int]:
    """Prompt token ids. Chat-template text already holds the model's special tokens (BOS
    included), so it is tokenized as is; fixed-text templates get the tokenizer's own special
    tokens added, as vLLM does for a text prompt (a BOS for Llama, nothing for Qwen)."""
    text = render(name, problem, tokenizer)
    return tokenizer(text, add_special_tokens=get(name).wrap != "chat")["input_ids"]


def same_for_pair(models) -> str:
    """The template shared by the `base` and `rl` models of params `models` (config.Model list);
    a TaskError if they differ, since then a pass@k gap would mix model and prompt effects."""
    pair = {m.role: m for m in models if m.role in ("base", "rl")}
    if len(pair) == 2 and pair["base"].template != pair["rl"].template:
        raise TaskError(f"base {pair['base'].label!r} uses template {pair['base'].template!r} but rl "
                        f"{pair['rl'].label!r} uses {pair['rl'].template!r}: a pair must share its template")
    return next(iter(pair.values())).template if pair else ""
