"""Visual reasoning plumbing: image-keyed prompts, the vision-language transformers backend, the
pairing of models and benchmarks by modality, the miniature visual benchmark, perplexity with images.

Runs on a tiny random LLaVA (tests/tiny_lm.py) saved with its processor, so it needs nothing built.
"""
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from tiny_lm import save_tiny_checkpoint, save_tiny_llava

from boundary import perplexity, runs, tasks
from boundary.config import Experiment, Sampling
from boundary.miniature import task as mtask
from boundary.sampling import runner
from boundary.sampling.backends import Request, TransformersBackend
from boundary.store import Store, make_key, prompt_sha256

PARAMS = Sampling(temperature=1.0, top_p=1.0, max_new_tokens=16, seed=0, batch_size=16)
QUESTION = "2+3?"  # the text beside every picture


def png(seed: int, size: int = 20) -> bytes:
    """A random RGB picture as PNG bytes, fixed by its seed."""
    pixels = (np.random.default_rng(seed).random((size, size, 3)) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_llava(tmp_path_factory.mktemp("llava"))


@pytest.fixture(scope="module")
def vlm(ckpt):
    return TransformersBackend(ckpt, device="cpu", dtype="float32")


def prompt(backend) -> str:
    content = [{"type": "image"}, {"type": "text", "text": QUESTION}]
    return backend.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


def fill(backend, root, images: dict[str, bytes], n: int):
    store = Store(root, make_key(backend.model.name_or_path, "chat", backend.name, PARAMS))
    return store, runner.run(backend, store, [(pid, prompt(backend), img) for pid, img in images.items()], n, PARAMS)


@pytest.mark.parametrize("a,b,same", [
    (("q", None), ("q", None), True),  # text prompts hash as before images existed
    (("q", png(0)), ("q", png(0)), True),  # the same picture: the same prompt
    (("q", png(0)), ("q", png(1)), False),  # another picture, same text: another prompt
    (("q", None), ("q", png(0)), False),  # with and without a picture
    (("q", png(0)), ("r", png(0)), False),  # another text, same picture
])
def test_the_image_enters_the_prompt_hash(a, b, same):
    assert (prompt_sha256(*a) == prompt_sha256(*b)) == same
    assert Request("p", a[0], (0,), a[1]).sha256 == prompt_sha256(*a)


def test_vlm_backend_samples_reproducibly_and_the_image_matters(vlm, tmp_path):
    first, stats = fill(vlm, tmp_path / "a", {"p0": png(0), "p1": png(1)}, 24)
    assert stats.samples == 48
    again, _ = fill(vlm, tmp_path / "b", {"p0": png(0), "p1": png(1)}, 24)
    df = first.read()
    assert df.equals(again.read()), "same seed, same images: the same samples"
    assert set(df.finish_reason) <= {"stop", "length"}
    assert df.groupby("problem_id").text.nunique().min() > 3, "samples of a problem differ from each other"
    # The image's placeholder is expanded: (16 / 8)^2 patch features + CLIP's class feature = 5 tokens.
    assert (df.prompt_tokens == len(vlm.tokenizer(prompt(vlm), add_special_tokens=False)["input_ids"]) + 4).all()
    # Same text prompt, problem key and seed; only the picture differs: p0 with another image.
    swapped, _ = fill(vlm, tmp_path / "c", {"p0": png(2)}, 24)
    a, b = df[df.problem_id == "p0"].text.tolist(), swapped.read().text.tolist()
    assert sum(x != y for x, y in zip(a, b)) >= 12, "another image changes most samples"
    assert df[df.problem_id == "p0"].prompt_sha256.iloc[0] != swapped.read().prompt_sha256.iloc[0]


def test_a_changed_image_is_not_mixed_into_a_store(vlm, tmp_path):
    fill(vlm, tmp_path / "s", {"p0": png(0)}, 2)
    with pytest.raises(ValueError, match="problem 'p0' was sampled from another prompt.*image changed"):
        fill(vlm, tmp_path / "s", {"p0": png(1)}, 4)


def test_images_and_models_must_match(vlm, tmp_path):
    with pytest.raises(ValueError, match="is a vision-language model but problem 'p0' has no image"):
        list(vlm.sample([Request("p0", prompt(vlm), (0,))], PARAMS))
    text = TransformersBackend(save_tiny_checkpoint(tmp_path / "text"), device="cpu")
    with pytest.raises(ValueError, match="is a text model but problem 'p0' comes with an image"):
        list(text.sample([Request("p0", "2+3?", (0,), png(0))], PARAMS))


def test_mrope_models_are_sent_to_vllm(tmp_path):
    from transformers import Qwen2VLConfig

    Qwen2VLConfig().save_pretrained(tmp_path)  # the config alone: the backend refuses before loading weights
    with pytest.raises(NotImplementedError, match="multimodal rotary positions.*use the vllm backend"):
        TransformersBackend(tmp_path, device="cpu")


# --- pairing models and benchmarks by modality ---
TEXT = {"label": "base", "role": "base", "path": "m/base", "template": "chat-question"}
TEXT_RL = {"label": "rl", "role": "rl", "path": "m/rl", "template": "chat-question"}
VLM = {"label": "vlm-base", "role": "base", "path": "m/vlm-base", "template": "chat-image", "modality": "vision"}
VLM_RL = {"label": "vlm-rl", "role": "rl", "path": "m/vlm-rl", "template": "chat-image", "modality": "vision"}
MINI = {"name": "miniature", "n": 4}
VISUAL = {"name": "miniature-visual", "n": 4}


@pytest.mark.parametrize("models,benchmarks,expected", [
    ([TEXT, TEXT_RL], [MINI], [("base", "miniature"), ("rl", "miniature")]),  # text only, as before
    ([TEXT, VLM], [MINI, VISUAL], [("base", "miniature"), ("vlm-base", "miniature-visual")]),  # each its own
    ([VLM, VLM_RL], [VISUAL, {"name": "mathvision", "n": 4}],  # the paper's visual experiment
     [("vlm-base", "miniature-visual"), ("vlm-base", "mathvision"), ("vlm-rl", "miniature-visual"), ("vlm-rl", "mathvision")]),
])
def test_models_meet_the_benchmarks_of_their_modality(models, benchmarks, expected):
    cfg = Experiment.model_validate({"name": "t", "models": models, "benchmarks": benchmarks})
    assert [(m.label, b.name) for m, b in runs.pairs(cfg)] == expected


@pytest.mark.parametrize("models,benchmarks,message", [
    ([TEXT, TEXT_RL], [MINI, VISUAL],  # a visual benchmark asked of text models
     r"benchmark 'miniature-visual' is visual, but no model has modality 'vision' \(models: base \(text\), rl \(text\)\)"),
    ([TEXT, VLM], [MINI],  # a vision-language model among text benchmarks only
     r"model 'vlm-base' has modality 'vision', but no benchmark is visual \(benchmarks: miniature \(text"),
])
def test_unmatched_models_or_benchmarks_are_errors(models, benchmarks, message):
    cfg = Experiment.model_validate({"name": "t", "models": models, "benchmarks": benchmarks})
    with pytest.raises(ValueError, match=message):
        runs.pairs(cfg)


# --- the miniature's visual benchmark ---
def test_miniature_visual_loads_from_parquet_with_a_trace_checker(tmp_path):
    rows = [{"id": f"v{i}", "question": "Compute the value of the expression in the image.", "answer": str(mtask.evaluate(e)),
             "difficulty": 2, "expression": e, "image": png(i)} for i, e in enumerate(["2+3*4", "9-2-3"])]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test.parquet")
    probs = tasks.load("miniature-visual", source=tmp_path)
    assert [(p.id, p.gold, p.visual, p.image == png(i)) for i, p in enumerate(probs)] == [
        ("miniature-visual/v0", "14", True, True), ("miniature-visual/v1", "4", True, True)]
    check = tasks.trace_checker("miniature-visual")
    assert check(probs[0], mtask.solve("2+3*4"))  # valid steps from the expression drawn
    assert not check(probs[0], "2+13=14\\boxed{14}")  # right answer by an invalid step (3*4 is not 13)
    text = tasks.render("chat-image", probs[0], tiny_processor())
    assert text == "<s>user: <image>Compute the value of the expression in the image.\nassistant: "
    pq.write_table(pa.Table.from_pylist([{**rows[0], "image": b""}]), tmp_path / "test.parquet")
    with pytest.raises(tasks.TaskError, match=r"test.parquet row 0: field 'image' is empty"):
        tasks.load("miniature-visual", source=tmp_path)


def tiny_processor():
    from tiny_lm import tiny_llava_processor

    return tiny_llava_processor()


@pytest.mark.shared
@pytest.mark.parametrize("pid,gold", [
    ("mathvision/4", "6"),  # "How many different digits can you find in this picture?"
    ("mathvision/5", "61"),  # the last daisy
    ("mathvision/7", "6"),  # missing bricks
])
def test_mathvision_free_form_items_have_images_and_gold_answers(shared, pid, gold):
    probs = {p.id: p for p in tasks.load("mathvision", source=shared("data", "benchmarks", "mathvision"),
                                         drop_multiple_choice=True, limit=10)}
    p = probs[pid]
    assert (p.gold, p.answer_type) == (gold, "math")
    assert Image.open(io.BytesIO(p.image)).size[0] > 0  # a readable picture
    assert "(A)" not in tasks.render("chat", p, tiny_processor())  # free-form: no options listed


# --- perplexity with images ---
def direct(model, prompt_ids, response, pixel_values):
    """log p(y_t | image, x, y_<t), one token at a time, no batching, no padding."""
    out = []
    with torch.no_grad():
        for t in range(len(response)):
            logits = model(input_ids=torch.tensor([prompt_ids + response[:t]]), pixel_values=pixel_values).logits[0, -1]
            out.append(torch.log_softmax(logits.float(), -1)[response[t]].item())
    return np.array(out)


def test_perplexity_with_images_equals_a_direct_computation(vlm):
    encoded = [vlm.encode_image(prompt(vlm), png(s), f"p{s}") for s in range(3)]
    rng = np.random.default_rng(0)
    responses = [rng.integers(4, 90, size=rng.integers(2, 9)).tolist() for _ in range(5)]
    which = [0, 1, 2, 0, 1]
    got = perplexity.token_logprobs(vlm.model, [encoded[w][0] for w in which], responses, batch_size=2,
                                    pad_token_id=vlm.pad_id, extra=[encoded[w][1] for w in which])
    for w, r, lp in zip(which, responses, got):
        np.testing.assert_allclose(lp, direct(vlm.model, encoded[w][0], r, encoded[w][1]["pixel_values"]),
                                       rtol=1e-5, atol=1e-4)  # float32 sums in another order: ~1e-6 relative
    # The image is read: the same response under another picture has other log-probabilities.
    other = perplexity.token_logprobs(vlm.model, [encoded[1][0]], [responses[0]], extra=[encoded[1][1]])
    assert not np.allclose(other[0], got[0])


def test_perplexity_of_stored_visual_samples(vlm, tmp_path):
    rows = [{"id": "v0", "question": "2+3?", "answer": "5", "difficulty": 1, "expression": "2+3", "image": png(0)}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test.parquet")
    probs = tasks.load("miniature-visual", source=tmp_path)
    samples = pd.DataFrame({"problem_id": [probs[0].id] * 3, "sample": [0, 1, 2], "text": ["5", "", "2+3=5\\boxed{5}"]})
    scored = perplexity.of_samples(vlm, "chat-image", probs, samples)
    assert np.isnan(scored.ppl.iloc[1]), "an empty response has nothing to score"
    ids, extra = vlm.encode_image(tasks.render("chat-image", probs[0], vlm.processor), png(0), "v0")
    resp = vlm.tokenizer("2+3=5\\boxed{5}", add_special_tokens=False)["input_ids"]
    expected = np.exp(-direct(vlm.model, ids, resp, extra["pixel_values"]).mean())
    assert scored.ppl.iloc[2] == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="samples of problems not in the benchmark"):
        perplexity.of_samples(vlm, "chat-image", probs, samples.assign(problem_id="elsewhere/1"))


def test_vllm_view_renames_vision_keys_and_transformers_loads_both(tmp_path):
    """transformers 5 saves a LLaVA's vision tower as `vision_tower.*`; vLLM 0.32 loads the hub layout
    `vision_tower.vision_model.*`. The view rewrites the weights beside links to the other files, keeps
    every tensor (the model computes the same), and leaves the checkpoint as it was."""
    from safetensors import safe_open
    from tiny_lm import tiny_llava, tiny_llava_processor
    from transformers import AutoModelForImageTextToText

    from boundary.sampling.backends import vllm_layout_needed, vllm_view
    from boundary.store import folder_sha256

    tok = tiny_llava_processor().tokenizer
    ckpt, view = tmp_path / "ckpt", tmp_path / "view"
    view.mkdir()
    tiny_llava(vocab=len(tok), image_token=tok.convert_tokens_to_ids("<image>")).save_pretrained(ckpt)
    before = folder_sha256(ckpt)
    assert vllm_view(ckpt, view) == view and folder_sha256(ckpt) == before
    assert vllm_layout_needed(ckpt / "model.safetensors") and not vllm_layout_needed(view / "model.safetensors")
    assert (view / "config.json").is_symlink() and not (view / "model.safetensors").is_symlink()
    with safe_open(str(view / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any(k.startswith("vision_tower.vision_model.embeddings") for k in keys)
    assert vllm_view(view, tmp_path) == view  # already in the hub layout: used as it is
    ids, pixels = torch.tensor([[1] + [99] * 5 + [7, 8]]), torch.rand(1, 3, 16, 16)
    logits = [AutoModelForImageTextToText.from_pretrained(d)(input_ids=ids, pixel_values=pixels).logits for d in (ckpt, view)]
    torch.testing.assert_close(*logits)
