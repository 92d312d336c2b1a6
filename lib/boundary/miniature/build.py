"""Build the miniature model family: `python -m boundary.miniature.build <experiment>` (`make models`).

Writes under the experiment's `miniature.out` (default `models/miniature/`):

    base/                 pretrained on imperfect + - * traces          (boundary.miniature.pretrain)
    rl-seed<s>/           base after RLVR, one per seed in rl.seeds      (boundary.miniature.rl)
    rl-seed<s>-step<t>/   intermediate RL checkpoints (rl.checkpoints)
    teacher/              base trained further on clean traces with `^`  (boundary.miniature.teacher)
    distilled/            base fine-tuned on the teacher's verified traces
    benchmark/            the held-out sets, test.jsonl and unseen.jsonl  (boundary.miniature.heldout)
    vlm-base/             with a `miniature.vision` section: a tiny LLaVA (boundary.miniature.vision) from
                          the base's decoder: layout stage, vision alignment, image -> trace training
    vlm-rl-seed<s>/       vlm-base after GRPO on drawn training problems (boundary.miniature.rl, encode=...)
    benchmark/visual/     test.parquet: the `test` problems drawn (id, question, answer, difficulty,
                          expression, image PNG)
    manifest.json         what was built, from which fingerprints, and how long each stage took

With a `miniature.rl_study` section (params/smoke-rl.yaml, miniature-rl.yaml) only the base (reused when
fresh: its fingerprint covers its own params sections and BASE_SOURCES, not the RL code) and the study's
checkpoints are built: `<label>-seed<s>` and `<label>-seed<s>-step<t>` under rl_study.out, with
rl_history.csv and manifest.json there.

The RL training histories (rl_history.csv, vlm_rl_history.csv) are drawn by notebooks 04 and 05 (the
stages flow one way: building models draws nothing). Each checkpoint folder carries
`miniature.json` with the fingerprint of what built it (its params sections, the parent's
fingerprint, the package's source); a stage whose fingerprint is unchanged is loaded, not
rebuilt, so editing the distillation params rebuilds only `distilled/`. Deterministic: the same
params give the same weights on the same machine.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import pandas as pd
import torch

from boundary import ROOT, config
from boundary.miniature import model as M
from boundary.miniature import heldout, pretrain, rl, task, teacher, train, vision
from boundary.miniature import tokenizer as tk

# replicas.py builds the real-model replicas, not this family: its changes leave the miniature as it is
# The task's language (tasks.arith: expressions, reductions, traces; tasks.boxed: the answer format) is
# the miniature's as much as its own modules are.
TASK_SOURCES = [ROOT / "lib" / "boundary" / "tasks" / "arith.py", ROOT / "lib" / "boundary" / "tasks" / "boxed.py"]
SOURCES = sorted(p for p in (ROOT / "lib" / "boundary" / "miniature").glob("*.py") if p.name != "replicas.py") + [
    ROOT / "lib" / "boundary" / "sampling" / "decode.py",
    ROOT / "lib" / "boundary" / "sampling" / "lean.py"] + TASK_SOURCES  # code whose change rebuilds everything (rollouts decode with both)
# The code that makes the base (and the VLM base): a change of the RL code (rl.py, losses.py) or of the
# teacher rebuilds what RL or the teacher made, never the base, which the RL study reuses.
BASE_SOURCES = [ROOT / "lib" / "boundary" / "miniature" / f for f in (
    "__init__.py", "model.py", "pretrain.py", "task.py", "tokenizer.py", "train.py", "vision.py")] + TASK_SOURCES


def task_params(cfg: config.Miniature) -> task.TaskParams:
    """The task module's view of the `miniature.task` section."""
    t = cfg.task
    return task.TaskParams(seed=t.seed, max_run=t.max_run, test_difficulties=tuple(t.test_difficulties),
                           test_per_difficulty=tuple(t.test_per_difficulty),
                           unseen_difficulties=tuple(t.unseen_difficulties),
                           unseen_per_difficulty=t.unseen_per_difficulty)


def fingerprint(*parts, sources: list[Path] = SOURCES) -> str:
    """A hash of params sections (pydantic models or plain values) and the package's source (`sources`)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p.model_dump() if hasattr(p, "model_dump") else p, sort_keys=True).encode())
    for src in sources:
        h.update(src.read_bytes() if src.exists() else b"")
    return h.hexdigest()[:16]


def _fresh(folder: Path, fp: str) -> bool:
    """Is `folder` a checkpoint built from fingerprint `fp`?"""
    meta = folder / "miniature.json"
    return meta.is_file() and json.loads(meta.read_text()).get("fingerprint") == fp


def build(experiment: str = "miniature", out: Path | None = None, overrides: dict | None = None) -> dict:
    """Build (or reuse) every checkpoint of the experiment's miniature family; return the manifest.

    `out` replaces `miniature.out` (tests build into a temporary folder).
    """
    exp = config.load(experiment, overrides)
    if exp.miniature is None:
        raise config.ConfigError(f"params/{experiment}.yaml has no 'miniature' section to build")
    cfg = exp.miniature
    out = Path(out) if out is not None else exp.resolve(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    params = task_params(cfg)
    tokenizer = tk.build()
    manifest: dict = {"experiment": experiment, "checkpoints": {}, "seconds": {}}

    def stage(name: str, fp: str, make, save=None, folder: Path | None = None) -> None:
        """Build checkpoint `name` (in `folder`, default out/name) with `make() -> (model, meta)` unless it is fresh.

        save(model, folder, meta) writes it (default: the model with the text tokenizer).
        """
        folder = folder or out / name
        manifest["checkpoints"][name] = {"path": str(folder), "fingerprint": fp}
        if _fresh(folder, fp):
            print(f">> {name}: up to date ({fp})", flush=True)
            return
        t0 = time.time()
        model, meta = make()
        manifest["seconds"][name] = round(time.time() - t0, 1)
        (save or (lambda m, f, x: M.save(m, tokenizer, f, x)))(
            model, folder, {"fingerprint": fp, "seconds": manifest["seconds"][name], **meta})
        print(f">> {name}: built in {manifest['seconds'][name]} s", flush=True)

    # base: pretrained from scratch
    fp_base = fingerprint(cfg.model, cfg.task, cfg.pretrain, cfg.seed, sources=BASE_SOURCES)

    def make_base():
        examples = pretrain.corpus(cfg.pretrain, params, cfg.seed, tokenizer)
        model = M.fresh(cfg.model, tokenizer, cfg.seed)
        losses = train.fit(model, examples, epochs=cfg.pretrain.epochs, batch_size=cfg.pretrain.batch_size,
                           lr=cfg.pretrain.lr, warmup=cfg.pretrain.warmup, seed=cfg.seed,
                           pad_id=tokenizer.pad_token_id, response_only=True, desc="base")
        # response_only: questions are uniform random digits, nothing to learn; measured on the
        # shared 2-core machine the loss on responses alone learned the traces in fewer steps.
        return model, {"role": "base", "examples": len(examples), "final_loss": sum(losses[-20:]) / len(losses[-20:])}

    stage("base", fp_base, make_base)
    base = lambda: M.load(out / "base")[0]  # noqa: E731 (a fresh copy of the base each time)

    # rl: one run per seed, intermediate checkpoints beside the final one; with `rl_study`, one run per
    # (variant, seed) of the study instead, in rl_study.out, and nothing else (the study reuses the base)
    study = cfg.rl_study
    runs = ([(f"{v.label}-seed{s}", cfg.study_rl(v), s, v.label) for v in study.variants for s in cfg.study_rl(v).seeds] if study
            else [(f"rl-seed{s}", cfg.rl, s, cfg.rl.algorithm) for s in cfg.rl.seeds])
    rl_out = exp.resolve(study.out) if study and out == exp.resolve(cfg.out) else out / "rl-study" if study else out
    histories = []
    for name, rl_cfg, seed, variant in runs:
        fp_rl = fingerprint(fp_base, rl_cfg.model_dump(exclude={"seeds"}), seed)
        for t in rl_cfg.checkpoints:
            manifest["checkpoints"][f"{name}-step{t}"] = {"path": str(rl_out / f"{name}-step{t}"),
                                                          "fingerprint": fingerprint(fp_rl, t)}

        def make_rl(seed=seed, name=name, fp_rl=fp_rl, rl_cfg=rl_cfg):
            model = base()
            save_at = lambda t: M.save(model, tokenizer, rl_out / f"{name}-step{t}",  # noqa: E731
                                       {"fingerprint": fingerprint(fp_rl, t), "role": "rl", "seed": seed, "step": t})
            history = rl.train(model, tokenizer, rl_cfg, params, seed, on_checkpoint=save_at, desc=name)
            return model, {"role": "rl", "seed": seed, "steps": rl_cfg.steps, "history": history}

        stage(name, fp_rl, make_rl, folder=rl_out / name)
        meta = json.loads((rl_out / name / "miniature.json").read_text())
        histories += [{"model": name, "variant": variant, "algorithm": rl_cfg.algorithm, "seed": seed, **row}
                      for row in meta["history"]]
    history = pd.DataFrame(histories)
    history.to_csv(rl_out / "rl_history.csv", index=False)
    if study:
        manifest["benchmark"] = [str(p) for p in heldout.write(params, out / "benchmark")]
        return _write_manifest(out if rl_out == out else rl_out, manifest)

    # teacher: the base trained further on clean traces that include `^`
    fp_teacher = fingerprint(fp_base, cfg.teacher)

    def make_teacher():
        model = base()
        examples = teacher.corpus(cfg.teacher, params, cfg.seed, tokenizer)
        train.fit(model, examples, epochs=cfg.teacher.epochs, batch_size=cfg.teacher.batch_size, lr=cfg.teacher.lr,
                  warmup=cfg.teacher.warmup, seed=cfg.seed + 1, pad_id=tokenizer.pad_token_id, desc="teacher")
        return model, {"role": "teacher", "examples": len(examples)}

    stage("teacher", fp_teacher, make_teacher)

    # distilled: the base fine-tuned on the teacher's own verified samples
    fp_distilled = fingerprint(fp_teacher, cfg.distill)

    def make_distilled():
        teach = M.load(out / "teacher")[0]
        questions = teacher.distill_prompts(cfg.distill, cfg.teacher, params, cfg.seed)
        outs = rl.rollouts(teach, tokenizer, questions, 1, seed=cfg.seed + 2,
                           temperature=cfg.distill.temperature, max_new_tokens=cfg.distill.max_new_tokens)
        examples = [tk.example_ids(tokenizer, q, text) for q, [(_, text, fin)] in zip(questions, outs)
                    if teacher.keep(cfg.distill, q, text, fin)]
        if not examples:
            raise RuntimeError("the teacher produced no trace to distill (check the teacher's training)")
        model = base()
        train.fit(model, examples, epochs=cfg.distill.epochs, batch_size=cfg.distill.batch_size, lr=cfg.distill.lr,
                  warmup=cfg.distill.warmup, seed=cfg.seed + 3, pad_id=tokenizer.pad_token_id,
                  response_only=True, desc="distilled")
        return model, {"role": "distilled", "teacher_samples": len(questions), "kept": len(examples)}

    stage("distilled", fp_distilled, make_distilled)

    # The held-out sets as a local benchmark folder (benchmarks `miniature`, `miniature-unseen`).
    manifest["benchmark"] = [str(p) for p in heldout.write(params, out / "benchmark")]

    # ---- the vision-language pair (boundary.miniature.vision), when the params have `miniature.vision`
    if cfg.vision is not None:
        vis = cfg.vision
        proc = vision.processor(vis.image_size, vis.patch)
        encoder = vision.Encoder(proc, vis.image_salt)  # held-out and RL images: one rule
        vsave = lambda m, f, x: vision.save(m, proc, f, x)  # noqa: E731
        fp_vlm = fingerprint(fp_base, vis.model_dump(exclude={"rl"}), sources=BASE_SOURCES)

        def make_vlm_base():
            examples, images = vision.corpus(vis.pretrain, params, vis.seed, proc)
            model = vision.fresh(base(), proc, vis, vis.seed)
            # stage 0: the decoder learns the image's layout with its cells given as text tokens
            layout = vision.as_text(proc, examples[: vis.layout_examples], images)
            train.fit(model, layout, epochs=1, batch_size=vis.pretrain.batch_size, lr=vis.pretrain.lr,
                      warmup=vis.pretrain.warmup, seed=vis.seed + 1, pad_id=tokenizer.pad_token_id,
                      response_only=True, desc="vlm-layout")
            # stage 1: vision tower and projector put each cell's character embedding in its place
            extra = vision.corpus(vis.pretrain.model_copy(update={"examples": vis.align_images}), params,
                                  vis.seed + 2, proc)[1]
            vision.align(model, proc, extra, batch_size=vis.pretrain.batch_size, lr=vis.align_lr, seed=vis.seed + 2)
            # stage 2: (image -> imperfect trace) pairs end to end
            batch = lambda idx: {"pixel_values": vision.pixels(proc, [vision.draw_image(  # noqa: E731
                images[i][0], images[i][1], size=vis.image_size, patch=vis.patch) for i in idx])}
            losses = train.fit(model, examples, epochs=vis.pretrain.epochs, batch_size=vis.pretrain.batch_size,
                               lr=vis.pretrain.lr, warmup=vis.pretrain.warmup, seed=vis.seed,
                               pad_id=tokenizer.pad_token_id, response_only=True, desc="vlm-base", inputs=batch)
            return model, {"role": "base", "examples": len(examples), "final_loss": sum(losses[-20:]) / len(losses[-20:])}

        stage("vlm-base", fp_vlm, make_vlm_base, vsave)
        vhist = []
        for seed in vis.rl.seeds:
            fp_vrl, name = fingerprint(fp_vlm, vis.rl.model_dump(exclude={"seeds"}), seed), f"vlm-rl-seed{seed}"
            for t in vis.rl.checkpoints:
                manifest["checkpoints"][f"{name}-step{t}"] = {"path": str(out / f"{name}-step{t}"),
                                                              "fingerprint": fingerprint(fp_vrl, t)}

            def make_vlm_rl(seed=seed, name=name, fp_vrl=fp_vrl):
                model = vision.load(out / "vlm-base")[0]
                save_at = lambda t: vision.save(model, proc, out / f"{name}-step{t}", {  # noqa: E731
                    "fingerprint": fingerprint(fp_vrl, t), "role": "rl", "seed": seed, "step": t})
                history = rl.train(model, proc.tokenizer, vis.rl, params, seed, on_checkpoint=save_at,
                                   desc=name, encode=encoder)
                return model, {"role": "rl", "seed": seed, "steps": vis.rl.steps, "history": history}

            stage(name, fp_vrl, make_vlm_rl, vsave)
            vhist += [{"seed": seed, **row} for row in json.loads((out / name / "miniature.json").read_text())["history"]]
        pd.DataFrame(vhist).to_csv(out / "vlm_rl_history.csv", index=False)
        manifest["benchmark"].append(str(vision.write_benchmark(params, encoder, out / "benchmark" / "visual")))
    return _write_manifest(out, manifest)


def _write_manifest(folder: Path, manifest: dict) -> dict:
    """manifest.json in `folder`, written atomically; returns the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(folder / "manifest.json")
    return manifest


def main() -> None:
    """Command line: the experiment's name (params/<name>.yaml), and optionally --out."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", nargs="?", default="miniature", help="params/<experiment>.yaml")
    ap.add_argument("--out", type=Path, default=None, help="checkpoint folder (default: miniature.out)")
    args = ap.parse_args()
    t0 = time.time()
    manifest = build(args.experiment, args.out)
    print(f">> built {len(manifest['checkpoints'])} checkpoints in {time.time() - t0:.0f} s: "
          f"{', '.join(manifest['checkpoints'])}")


if __name__ == "__main__":
    main()
