"""The perplexity study of notebook 04 (boundary.perplexity: checkpoints, score, medians) on the
smoke world, sampled into a temporary results folder: scored responses are exactly the stored
ones under the prompt they were sampled with, and the bootstrap summaries are paired and sane."""
import numpy as np
import pandas as pd
import pytest
import torch

from boundary import config, perplexity, runs, tasks
from boundary.config import Model
from boundary.sampling import backends
from boundary.store import sha256_text

SMOKE = config.load("smoke")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The smoke experiment on its first 6 problems with n = 3, sampled into a temporary folder."""
    missing = [p for p in SMOKE.inputs() if not p.exists()]
    if missing:
        pytest.skip(f"the smoke world is not built ({missing[0]}): make models EXPERIMENT=smoke")
    mp = pytest.MonkeyPatch()
    mp.setenv(config.OUTPUTS_ENV, str(tmp_path_factory.mktemp("outputs")))
    text = [m.model_dump() for m in SMOKE.models if m.modality == "text"]  # the VLM pair needs a visual benchmark
    cfg = config.load("smoke", {"models": text,
                                "benchmarks": [{"name": "miniature", "source": "models/smoke/benchmark",
                                                "n": 3, "limit": 6}],
                                "perplexity.responses": 2})
    runs.sample(cfg, progress=False)
    yield cfg
    mp.undo()


def test_checkpoints_derived_from_the_miniature_or_listed():
    derived = perplexity.checkpoints(SMOKE)
    mini = SMOKE.miniature
    assert [(m.label, m.path, m.step) for m in derived] == [
        (f"rl-seed{s}-step{t}", f"{mini.out}/rl-seed{s}-step{t}", t) for s in mini.rl.seeds for t in mini.rl.checkpoints]
    listed = config.load("smoke", {"perplexity.checkpoints": [{"label": "ck", "role": "rl", "path": "x", "step": 7}]})
    assert [(m.label, m.step) for m in perplexity.checkpoints(listed)] == [("ck", 7)]
    base = next(m for m in SMOKE.models if m.role == "base")
    assert perplexity.step_of(SMOKE, base) == 0 and perplexity.step_of(SMOKE, derived[0]) == derived[0].step


def _direct_ppl(model, prompt, resp):
    """exp(-mean log p) of `resp` after `prompt`, from one unbatched forward pass in float64."""
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([prompt + resp])).logits[0].double(), -1)
    return float(np.exp(-np.mean([logp[len(prompt) - 1 + t, y].item() for t, y in enumerate(resp)])))


def test_scores_are_the_stored_tokens_under_their_sampling_prompt(world):
    base, rl = (next(m for m in world.models if m.label == label) for label in world.passk.pair)
    scores = perplexity.score(world, [(base, base), (base, rl)], progress=False)
    assert set(scores["condition"]) == {f"PPL_{base.label}(Y_{base.label})", f"PPL_{base.label}(Y_{rl.label})"}
    assert len(scores) == 2 * 6 * 2  # conditions x problems x responses
    run = next(r for r in runs.runs(world, models=[rl]))
    stored = run.store.read().set_index(["problem_id", "sample"])
    engine = perplexity._engine(world, base)
    tok, model = engine.tokenizer, engine.model
    rl_rows = scores[scores["condition"] == f"PPL_{base.label}(Y_{rl.label})"]
    for _, row in rl_rows.iterrows():  # every row recomputed by hand: the prompt as sampled, the sampled tokens
        s = stored.loc[(row["problem"], row["sample"])]
        problem = next(p for p in runs.problems(run.benchmark) if p.id == row["problem"])
        text = tasks.render(rl.template, problem, tok)
        assert sha256_text(text, 16) == s["prompt_sha256"]
        resp = s["token_ids"].tolist()  # as sampled: the stop token is the last one exactly when it ended the sample
        assert len(resp) == s["completion_tokens"] == row["tokens"]
        assert (resp[-1] in backends.stop_token_ids(tok, model.generation_config)) == (s["finish_reason"] == "stop")
        assert tok.decode(resp, skip_special_tokens=True) == s["text"]
        assert row["ppl"] == pytest.approx(_direct_ppl(model, backends.encode(tok, text), resp), rel=1e-4)


def test_a_store_without_token_ids_is_scored_from_its_text_with_a_warning(world):
    base = next(m for m in world.models if m.role == "base")
    engine = perplexity._engine(world, base)
    df = perplexity.responses(world, base)
    probs = {p.id: p for b in world.benchmarks for p in runs.problems(b)}
    old = df.drop(columns=["token_ids"]).rename(columns={"problem": "problem_id"})  # a store of before the column
    with pytest.warns(UserWarning, match=f"{len(old)} of {len(old)} samples re-tokenized"):
        scored = perplexity.of_samples(engine, base.template, probs.values(), old)
    tok = engine.tokenizer
    for r in scored.itertuples():  # as before the column: the text re-tokenized, EOS when it stopped
        resp = tok(r.text, add_special_tokens=False)["input_ids"] + ([tok.eos_token_id] if r.finish_reason == "stop" else [])
        prompt = backends.encode(tok, tasks.render(base.template, probs[r.problem_id], tok))
        assert r.ppl == pytest.approx(_direct_ppl(engine.model, prompt, resp), rel=1e-4)


def test_too_few_stored_responses_is_an_error(world):
    base = next(m for m in world.models if m.role == "base")
    more = world.model_copy(update={"perplexity": world.perplexity.model_copy(update={"responses": 5})})
    with pytest.raises(RuntimeError, match="fewer than 5 stored responses"):
        perplexity.responses(more, base)


def test_checkpoint_responses_are_sampled_with_n_responses(world):
    ck = perplexity.checkpoints(world)[:1]
    runs.sample(world, models=ck, n=world.perplexity.responses, progress=False)
    got = perplexity.responses(world, ck[0])
    assert sorted(got["sample"].unique()) == [0, 1] and got["problem"].nunique() == 6


def _frame(values: dict[str, list[list[float]]]) -> pd.DataFrame:
    """Scores of several conditions: per condition, per problem, a list of perplexities."""
    return pd.DataFrame([{"condition": c, "problem": f"p{i}", "ppl": v} for c, per in values.items()
                         for i, vs in enumerate(per) for v in vs])


def test_medians_are_paired_and_contain_the_estimate():
    rng = np.random.default_rng(0)
    per = [list(rng.lognormal(0.3, 0.2, size=4)) for _ in range(30)]
    scores = _frame({"a": per, "b": per, "c": [[v * 2 for v in vs] for vs in per]})
    m = perplexity.medians(scores, B=300, seed=1).set_index("condition")
    assert m.loc["a", "median"] == pytest.approx(np.median(np.concatenate(per)))
    assert (m["ci_low"] <= m["median"]).all() and (m["median"] <= m["ci_high"]).all()
    assert m.loc["a", ["ci_low", "ci_high"]].tolist() == m.loc["b", ["ci_low", "ci_high"]].tolist()  # same draws
    assert m.loc["c", "ci_low"] == pytest.approx(2 * m.loc["a", "ci_low"])  # scaling commutes with the median
    assert m.loc["a", "problems"] == 30 and m.loc["a", "responses"] == 120


def test_median_difference_is_paired():
    rng = np.random.default_rng(0)
    per = [list(rng.lognormal(0.3, 0.5, size=4)) for _ in range(30)]
    same = perplexity.median_difference(_frame({"a": per, "b": per}), "a", "b", B=200)
    assert same["diff"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0  # pairing removes all noise
    shifted = perplexity.median_difference(_frame({"a": per, "b": [[v + 1 for v in vs] for vs in per]}), "a", "b", B=200)
    assert shifted["diff"] == pytest.approx(1) and shifted["ci_low"] == pytest.approx(1)
    with pytest.raises(ValueError, match="different"):
        perplexity.median_difference(_frame({"a": per, "b": per[:-1]}), "a", "b")


def test_only_keeps_one_benchmark():
    one = SMOKE.only("miniature")
    assert [b.name for b in one.benchmarks] == ["miniature"]
    with pytest.raises(config.ConfigError, match="no benchmark 'nope'"):
        SMOKE.only("nope")
