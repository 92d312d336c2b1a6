"""Stop rules: when a sample ends, per model, prompt template and problem kind.

A base model prompted in a chat format or with a completion template does not stop by itself at
the end of its answer: Qwen2.5 base checkpoints end a ChatML turn with `<|im_end|>`, but their
generation config names only `<|endoftext|>`; under `abel` a Llama base model writes new
"Question: ... Answer: ..." blocks until the token budget is spent. The grader takes the *last*
`\\boxed{}`, so the grade would then come from a problem the model invented. `stop_rule` gathers
what ends a sample, and both backends apply it (vLLM: `stop_token_ids` and `stop`; transformers:
decode's stop ids and `backends.cut_at_stop`):

- token ids: the tokenizer's end-of-sequence token, every `eos_token_id` of the model's generation
  config, and the chat format's end of turn: for ChatML templates (`qwen-boxed`) `<|im_end|>` and
  `<|im_start|>` (a new turn cannot begin inside an answer), whatever the tokenizer calls its EOS;
  for the tokenizer's own chat template (`chat`, `chat-question`, `chat-image`) the special token
  that closes an assistant turn, found by rendering one. A marker the tokenizer does not hold as
  one token becomes a stop string instead.
- strings, for completion templates (no turns to end): the text with which the template opens a
  problem, which a rambling model writes again before it invents the next one (`COMPLETION_STOPS`).

A stop string never cuts the answer line its template asks for: the official limit-of-RLVR
evaluation stops `abel` at "Question:" and "Answer:", and a DAPO evaluation stopping at "Answer:"
cut exactly the line "Answer: $Answer" that the DAPO prompt asks for. Here `abel` stops at
"Question:" only, and `dapo` at the DAPO prompt's opening sentence.

The rule is part of the sample-store key (`store.make_key(stops=...)`) through `keyed`: what it adds
to the model's own end-of-sequence ids, which the store key already covers through the model's
identity. A rule that adds nothing (the miniature's: its chat template closes a turn with its EOS)
leaves the key as it was.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from boundary.store import StoreKey, make_key
from boundary.tasks import templates

KINDS = ("math", "code", "visual")  # problem kinds (boundary.tasks.registry.Spec.kind)
CHATML_MARKERS = ("<|im_end|>", "<|im_start|>")  # ChatML's end and start of a turn
SENTINEL = "STOPRULESENTINEL"  # an assistant turn's content, to find what the chat template writes after it

# evalplus's direct-completion stops (evalplus/provider/utility.py: EOS, and
# extra_eos_for_direct_completion per dataset): a completion of a HumanEval+ function body stops
# at the next top-level definition, import or test; of an MBPP+ task at the next docstring or test.
# The token-like strings of evalplus's list ("<|endoftext|>", "</s>", ...) are the models' EOS
# tokens, which the token ids cover.
EVALPLUS_STOPS = ("\nif __name__", "\ndef main(", "\nprint(")
EVALPLUS_EXTRA = {"humaneval_plus": ("\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert "),
                  "mbpp_plus": ('\n"""', "\nassert")}
# LiveCodeBench completions (`plain`): a new problem restarts with rllm's system text
# (templates.LCB_SYSTEM); the program itself may define main() or test __name__, so evalplus's
# stops would cut it.
LCB_STOPS = ("You are an expert Python programmer",)

# Completion templates: per (template, kind), the strings that open a new problem in that format.
COMPLETION_STOPS: dict[tuple[str, str], tuple[str, ...]] = {
    ("abel", "math"): ("Question:",),  # abel frames a problem as "Question:\n...\nAnswer:\n..."; not "Answer:"
    # plain math opens a problem with its bare question: only the boxed instruction after it (templates.BOXED)
    # marks a new one, so the invented question's text may stay, but never its answer
    ("plain", "math"): ("Please reason step by step",),
    ("dapo", "math"): ("Solve the following math problem",),  # the DAPO prompt's opening; never "Answer:"
}


@dataclass(frozen=True)
class StopRule:
    """What ends a sample of one model under one template and problem kind."""

    token_ids: tuple[int, ...]  # token ids that end a sample (sorted): EOS, generation-config EOS, end of turn
    strings: tuple[str, ...]  # strings that end a sample: the text is cut before the first one

    def keyed(self, eos_ids) -> tuple[tuple[str, tuple], ...]:
        """The part of the rule the store key records: stop ids beyond the model's own end-of-sequence
        ids `eos_ids` (which the model's identity already keys), and the strings. Empty when the rule
        adds nothing, so such stores keep their keys."""
        out = []
        extra = tuple(sorted(set(self.token_ids) - set(eos_ids)))
        if extra:
            out.append(("stop_token_ids", extra))
        if self.strings:
            out.append(("stop_strings", self.strings))
        return tuple(out)


def eos_ids(tokenizer, generation_config=None) -> tuple[int, ...]:
    """The model's end-of-sequence ids: the tokenizer's EOS and every `eos_token_id` of its generation
    config (an int or a list); a ValueError when there are none (samples would never stop)."""
    ids = set()
    for source in (getattr(generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if source is not None:
            ids.update(source if isinstance(source, (list, tuple)) else [source])
    if not ids:
        raise ValueError(f"{tokenizer.name_or_path!r}: no end-of-sequence token; samples would never stop")
    return tuple(sorted(int(i) for i in ids))


def single_token(tokenizer, text: str) -> int | None:
    """The id of `text` when the tokenizer holds it as one token (an added or special token), else None."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return int(ids[0]) if len(ids) == 1 else None


def special_ids(tokenizer) -> set[int]:
    """Ids of the tokenizer's special tokens (its named specials and added tokens marked special)."""
    ids = set(tokenizer.all_special_ids)
    ids.update(i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(t, "special", False))
    return ids


def end_of_turn(tokenizer, name: str = "") -> int | None:
    """The special token the tokenizer's chat template writes right after an assistant turn's content,
    found by rendering one (user, assistant[, user]); None when the template closes a turn with
    ordinary text (the model's EOS then ends its answer). A ValueError when there is no chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{name or tokenizer.name_or_path!r}: template 'chat' needs the tokenizer's chat template, "
                         "and it has none (a base model?): use 'plain', 'abel' or 'qwen-boxed'")
    specials = special_ids(tokenizer)
    for content in (SENTINEL, [{"type": "text", "text": SENTINEL}]):  # plain strings, or content lists (VLMs)
        for tail in ([], [{"role": "user", "content": "Q2"}]):  # a following turn, for templates that drop a last one
            messages = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": content}] + tail
            try:
                text = tokenizer.apply_chat_template(messages, tokenize=False)
            except Exception:  # noqa: BLE001 - a template may refuse one message shape; the next is tried
                continue
            if SENTINEL not in text:
                continue
            after = text.split(SENTINEL, 1)[1]
            ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
            if ids:
                return int(ids[0]) if int(ids[0]) in specials else None
    raise ValueError(f"{name or tokenizer.name_or_path!r}: its chat template did not render an assistant turn "
                     "(tried string and content-list messages), so its end-of-turn token cannot be found")


def completion_stops(template: str, kind: str, benchmark: str | None = None) -> tuple[str, ...]:
    """Stop strings of a completion template (`templates.Template.wrap == "plain"`) for a problem kind;
    plain code completions need the benchmark (evalplus's stops differ per dataset)."""
    if (template, kind) in COMPLETION_STOPS:
        return COMPLETION_STOPS[template, kind]
    if template == "plain" and kind == "code":
        if benchmark in EVALPLUS_EXTRA:
            return EVALPLUS_STOPS + EVALPLUS_EXTRA[benchmark]
        if benchmark == "livecodebench":
            return LCB_STOPS
        raise ValueError(f"template 'plain' on code: stop strings are known for humaneval_plus, mbpp_plus and "
                         f"livecodebench, not benchmark {benchmark!r}")
    raise ValueError(f"completion template {template!r} has no stop strings for {kind} problems "
                     f"(boundary.sampling.stops.COMPLETION_STOPS): a rambling model would never be stopped")


@functools.lru_cache(maxsize=64)
def _load(path: str, revision: str | None, stamp: float):
    """(tokenizer, generation config or None) of a checkpoint; `stamp` (a local folder's newest file time)
    makes a rebuilt folder load afresh."""
    import warnings

    with warnings.catch_warnings():  # store keys are made in notebooks that never sample: importing transformers
        # there must not print tqdm's "IProgress not found" (a Jupyter widget notice) into a cell's output
        warnings.filterwarnings("ignore", message="IProgress not found")
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    try:
        generation = GenerationConfig.from_pretrained(path, revision=revision)
    except OSError:  # no generation_config.json: transformers derives one from the model config, as here
        generation = GenerationConfig.from_model_config(AutoConfig.from_pretrained(path, revision=revision))
    return tokenizer, generation


def load_tokenizer(model: str | Path, revision: str | None = None):
    """(tokenizer, generation config) of `model` (a checkpoint folder or hub id), cached per folder state."""
    from boundary.sampling.backends import resolve  # backends imports this module

    path = resolve(model)
    folder = Path(path)
    stamp = max((p.stat().st_mtime for p in folder.iterdir()), default=0.0) if folder.is_dir() else 0.0
    return _load(path, revision, stamp)


def rule_for(tokenizer, generation_config, template: str, kind: str = "math", benchmark: str | None = None,
             name: str = "") -> StopRule:
    """The stop rule of a loaded tokenizer and generation config (see `stop_rule`)."""
    if kind not in KINDS:
        raise ValueError(f"stop rule: kind {kind!r} is not one of {KINDS}")
    t = templates.get(template)
    if not templates.covers(template, kind):
        raise ValueError(f"stop rule: template {template!r} does not render {kind} problems")
    ids, strings = set(eos_ids(tokenizer, generation_config)), []
    if t.wrap == "chatml":
        for marker in CHATML_MARKERS:
            one = single_token(tokenizer, marker)
            ids.add(one) if one is not None else strings.append(marker)
    elif t.wrap == "chat":
        eot = end_of_turn(tokenizer, name)
        if eot is not None:
            ids.add(eot)
    else:
        strings.extend(completion_stops(template, kind, benchmark))
    return StopRule(token_ids=tuple(sorted(ids)), strings=tuple(strings))


def stop_rule(model: str | Path, template: str, kind: str = "math", revision: str | None = None,
              benchmark: str | None = None) -> StopRule:
    """What ends a sample of `model` (a params file's `path`: checkpoint folder or hub id) prompted with
    `template` on problems of `kind` ("math", "code", "visual"); `benchmark` (its registry name) is
    needed only by `plain` code completions. See the module docstring."""
    tokenizer, generation = load_tokenizer(model, revision)
    return rule_for(tokenizer, generation, template, kind, benchmark, name=str(model))


def keyed_rule(model: str | Path, template: str, kind: str = "math", revision: str | None = None,
               benchmark: str | None = None) -> tuple[StopRule, tuple[tuple[str, tuple], ...]]:
    """(the stop rule, its part the store key records: `StopRule.keyed` against the model's own EOS ids)."""
    tokenizer, generation = load_tokenizer(model, revision)
    rule = rule_for(tokenizer, generation, template, kind, benchmark, name=str(model))
    return rule, rule.keyed(eos_ids(tokenizer, generation))


def store_key(model: str | Path, template: str, backend: str, sampling, kind: str = "math",
              revision: str | None = None, benchmark: str | None = None,
              max_model_len: int | None = None) -> tuple[StopRule, StoreKey]:
    """(the stop rule, the sample-store key) of sampling `model` with the registered prompt `template`
    on problems of `kind`: the one derivation the notebooks' runs (`runs.runs`) and the command-line
    runner share, so a store filled by either is the other's."""
    rule, keyed = keyed_rule(model, template, kind, revision, benchmark)
    return rule, make_key(model, templates.template_hash(template), backend, sampling, revision, stops=keyed,
                          max_model_len=max_model_len)
