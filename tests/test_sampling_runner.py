"""The transformers backend and the runner: top-up, resume after kill -9, seeds, stop strings, lengths."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from tiny_lm import char_tokenizer, chat_prompt, save_tiny_checkpoint

from boundary import ROOT, tasks
from boundary.config import Sampling
from boundary.sampling import runner
from boundary.sampling.backends import Request, TransformersBackend, cut_at_stop, encode, sample_seed
from boundary.sampling.stops import store_key
from boundary.store import Store, make_key

QUESTIONS = {f"p{i}": q for i, q in enumerate(["2+3?", "7*8-1?", "(4+4)/2?", "9-3*2?", "1+1+1?", "6/3?"])}
PARAMS = Sampling(temperature=1.0, top_p=0.95, max_new_tokens=24, seed=0, batch_size=16, stop=[])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), eos_boost=50.0)


@pytest.fixture(scope="module")
def backend(ckpt):
    return TransformersBackend(ckpt, device="cpu")


def problems(backend):
    return [(pid, chat_prompt(backend.tokenizer, q)) for pid, q in QUESTIONS.items()]


def clean(df):
    """Rows whose text has one character per generated token (no special token emitted)."""
    return df.text.str.len() == df.completion_tokens - (df.finish_reason == "stop")


def fill(backend, root, n, params=PARAMS, **kw):
    store = Store(root, make_key(backend.model.name_or_path, "chat", backend.name, params))
    stats = runner.run(backend, store, problems(backend), n, params, **kw)
    return store, stats


def test_top_up_generates_only_missing_and_matches_a_full_run(backend, tmp_path):
    store, first = fill(backend, tmp_path / "a", 4)
    assert first.samples == 6 * 4
    store, second = fill(backend, tmp_path / "a", 10)
    assert second.samples == 6 * 6  # indices 4..9 only
    _, again = fill(backend, tmp_path / "a", 10)
    assert again.samples == 0
    full, _ = fill(backend, tmp_path / "b", 10, chunk=7)
    assert store.read().equals(full.read())
    assert sorted(store.read().groupby("problem_id")["sample"].apply(list).iloc[0]) == list(range(10))


def test_seeds_reproduce(backend, tmp_path):
    a, _ = fill(backend, tmp_path / "a", 5)
    b, _ = fill(backend, tmp_path / "b", 5)
    c, _ = fill(backend, tmp_path / "c", 5, params=PARAMS.model_copy(update={"seed": 1}))
    assert a.read().equals(b.read())
    assert (a.read().text != c.read().text).mean() > 0.5


def test_finish_reasons_and_token_counts(backend, tmp_path):
    store, _ = fill(backend, tmp_path, 8)
    df = store.read()
    assert set(df.finish_reason) == {"stop", "length"}, "the fixture should exercise both reasons"
    length, stop = df[df.finish_reason == "length"], df[df.finish_reason == "stop"]
    assert (length.completion_tokens == PARAMS.max_new_tokens).all()
    # one character per token, except special tokens (dropped from the text) the random model may emit
    assert (length.text.str.len() <= PARAMS.max_new_tokens).all()
    # stopped by the end-of-sequence token: counted (as vLLM does), not in the text
    assert (stop.text.str.len() + 1 <= stop.completion_tokens).all()
    assert (stop.completion_tokens <= PARAMS.max_new_tokens).all()
    assert (clean(df)).mean() > 0.5
    prompts = dict(problems(backend))
    assert (df.prompt_tokens == df.problem_id.map(lambda p: len(encode(backend.tokenizer, prompts[p])))).all()
    assert set(df.backend) == {"transformers"} and df.backend_version.iloc[0] == backend.version


def test_stop_strings_cut_the_text(backend, tmp_path):
    free, _ = fill(backend, tmp_path / "free", 8)
    params = PARAMS.model_copy(update={"stop": ["k", "j"]})  # frequent in the fixture's samples
    cut, _ = fill(backend, tmp_path / "cut", 8, params=params)
    assert cut.key.digest() != free.key.digest()
    n_cut = 0
    f_df, c_df = free.read(), cut.read()
    for f, c, ok in zip(f_df.itertuples(), c_df.itertuples(), clean(f_df)):
        if not ok:  # a special token in the text: characters no longer count tokens
            continue
        hits = [i for i in (f.text.find("k"), f.text.find("j")) if i >= 0]
        if hits:  # cut before the first stop string; tokens counted through the one completing it
            n_cut += 1
            assert (c.text, c.finish_reason, c.completion_tokens) == (f.text[:min(hits)], "stop", min(hits) + 1)
        else:
            assert (c.text, c.finish_reason, c.completion_tokens) == (f.text, f.finish_reason, f.completion_tokens)
    assert n_cut > 5, "the stop strings should occur in the fixture's samples"


@pytest.mark.parametrize("text, stop, expected", [
    ("abc+def", ["+"], ("abc", 4, True)),  # cut at the stop string; 4 tokens up to and including "+"
    ("abc+def", ["x"], ("abc+def", 7, False)),  # absent: unchanged
    ("abc+def", ["de", "c+"], ("ab", 4, True)),  # the earliest of several; completed by "+"
    ("abc+def", [], ("abc+def", 7, False)),  # no stop strings
    ("+abc", ["+"], ("", 1, True)),  # at the very start
])
def test_cut_at_stop(text, stop, expected):
    tok = char_tokenizer()
    assert cut_at_stop(tok, tok(text, add_special_tokens=False)["input_ids"], stop) == expected


def test_render_and_encode():
    tok = char_tokenizer()
    chat = chat_prompt(tok, "2+2?")
    assert chat == "<s>user: 2+2?\nassistant: "
    assert encode(tok, chat).count(tok.bos_token_id) == 1  # BOS not added twice
    plain = tasks.render("abel", tasks.Problem.bare("q", "2+2?"), tok)
    assert plain.startswith("Question:\n2+2?") and encode(tok, plain)[0] == tok.bos_token_id


def test_sample_seed_is_stable_and_distinct():
    seeds = {sample_seed(0, "p", i) for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**63 for s in seeds)
    assert sample_seed(0, "p", 0) != sample_seed(1, "p", 0) != sample_seed(0, "q", 0)


def test_a_changed_prompt_is_refused(backend, tmp_path):
    store, _ = fill(backend, tmp_path, 2)
    changed = [(pid, p + " ") for pid, p in problems(backend)]
    with pytest.raises(ValueError, match="another prompt"):
        runner.run(backend, store, changed, 3, PARAMS)


def test_resume_after_kill_9_reproduces_an_uninterrupted_run(ckpt, backend, tmp_path):
    """A runner subprocess is SIGKILLed once it has written some shards; a resumed run completes the store
    exactly as an uninterrupted run does, with no (problem, index) missing or duplicated."""
    jsonl = tmp_path / "problems.jsonl"
    jsonl.write_text("".join(json.dumps({"id": pid, "question": q}) + "\n" for pid, q in QUESTIONS.items()))
    n = 24
    args = [sys.executable, "-m", "boundary.sampling.runner", "--model", str(ckpt), "--problems", str(jsonl),
            "--n", str(n), "--store", str(tmp_path / "killed"), "--temperature", "1.0", "--top-p", "0.95",
            "--max-new-tokens", "24", "--batch-size", "4", "--chunk", "4", "--threads", "1"]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    store_dirs = lambda: list((tmp_path / "killed").glob("*/shard-*.parquet"))  # noqa: E731
    while len(store_dirs()) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    [folder] = (tmp_path / "killed").iterdir()
    params = PARAMS.model_copy(update={"batch_size": 4})
    rule, key = store_key(ckpt, "chat-question", "transformers", params)
    killed = Store(tmp_path / "killed", key)
    assert killed.dir == folder, "the CLI and the notebooks' runs must derive the same store key"
    partial = len(killed.read())
    assert 0 < partial < len(QUESTIONS) * n
    stats = runner.run(backend, killed, problems(backend), n, params, rule=rule)
    assert stats.samples == len(QUESTIONS) * n - partial
    reference, _ = fill(backend, tmp_path / "reference", n, params=PARAMS.model_copy(update={"batch_size": 32}))
    got = killed.read()
    assert len(got) == len(QUESTIONS) * n and not got.duplicated(["problem_id", "sample"]).any()
    assert got.equals(reference.read())


def test_a_stop_rule_ends_samples_at_its_tokens_and_strings(backend, tmp_path):
    from boundary.sampling import StopRule

    tok = backend.tokenizer
    e = tok.convert_tokens_to_ids("e")  # stands for an end-of-turn token the generation config omits
    rule = StopRule(token_ids=(tok.eos_token_id, e), strings=("k",))
    reqs = [Request(pid, p, tuple(range(8))) for pid, p in problems(backend)]
    free = {(s.problem_id, s.sample): s for s in backend.sample(reqs, PARAMS)}
    ruled = {(s.problem_id, s.sample): s for s in backend.sample(reqs, PARAMS, rule)}
    n_cut = 0
    for k, f in free.items():
        r = ruled[k]
        if len(f.text) != f.completion_tokens - (f.finish_reason == "stop"):
            continue  # a special token in the text: characters no longer count tokens
        hits = [i for i in (f.text.find("e"), f.text.find("k")) if i >= 0]
        if hits:  # cut before the first "e" token or "k" string, the stopping token counted (as vLLM does)
            n_cut += 1
            assert (r.text, r.finish_reason, r.completion_tokens) == (f.text[:min(hits)], "stop", min(hits) + 1)
        else:
            assert (r.text, r.finish_reason, r.completion_tokens) == (f.text, f.finish_reason, f.completion_tokens)
    assert n_cut > 5, "the rule's token and string should occur in the fixture's samples"


def test_the_window_ends_samples_and_refuses_prompts_that_fill_it(ckpt, backend, tmp_path):
    assert backend.window == 512  # the tiny Llama's max_position_embeddings
    prompt_len = max(len(encode(backend.tokenizer, p)) for _, p in problems(backend))
    window = prompt_len + 10  # room for at most 10 of max_new_tokens' 24
    small = TransformersBackend(ckpt, device="cpu", max_model_len=window)
    store, _ = fill(small, tmp_path / "w", 6)
    df = store.read()
    length = df[df.finish_reason == "length"]
    assert len(length) > 0 and (length.prompt_tokens + length.completion_tokens == window).all()
    assert (df.prompt_tokens + df.completion_tokens <= window).all()
    long = problems(backend) + [("p-long", chat_prompt(backend.tokenizer, "1+" * window + "1?"))]
    empty = Store(tmp_path / "refused", make_key(ckpt, "chat", "transformers", PARAMS))
    with pytest.raises(ValueError, match=r"fill the model's window of \d+ tokens \(max_model_len\).*'p-long'"):
        runner.run(small, empty, long, 2, PARAMS)
    assert empty.read().empty, "refused before anything was sampled or stored"
    with pytest.raises(ValueError, match="exceeds the model's 512 positions"):
        TransformersBackend(ckpt, device="cpu", max_model_len=513)


@pytest.mark.parametrize("asked, visible, refused", [
    (1, 1, False),  # one GPU asked, one there
    (4, 1, True),  # the 32B files' old 4 on a one-GPU machine
    (2, None, False),  # a CPU build of vLLM: ranks on CPU cores, nothing to count
])
def test_more_gpus_than_the_machine_has_is_refused(asked, visible, refused):
    from boundary.sampling.backends import check_gpus

    if refused:
        with pytest.raises(ValueError, match=f"tensor_parallel_size is {asked} but this machine has {visible} GPU"):
            check_gpus(asked, visible, "Qwen/Qwen2.5-32B")
    else:
        check_gpus(asked, visible, "Qwen/Qwen2.5-32B")


def test_load_checks_the_gpus_before_loading(monkeypatch):
    from boundary.sampling import backends

    monkeypatch.setattr(backends, "available_gpus", lambda: 1)
    monkeypatch.setattr(backends, "VLLMBackend", lambda *a, **k: pytest.fail("the engine was built"))
    with pytest.raises(ValueError, match="tensor_parallel_size is 4 but this machine has 1 GPU"):
        backends.load("vllm", "Qwen/Qwen2.5-32B", params=Sampling(backend="vllm", tensor_parallel_size=4))
