"""The miniature: an embedded reasoning world with its own base, RL-trained and distilled models.

No weights can be downloaded here, so the default experiment builds a small model family from
scratch on the CPU (`make models`, `python -m boundary.miniature.build <experiment>`):

- `task`: integer-arithmetic chains solved one reduction per `=`, ending in `\\boxed{N}`; held-out
  sets `problems("test")` and `problems("unseen")` (the teacher's `^`), `check_answer` and
  `check_trace` (right answer by valid steps: lucky hits fail it);
- `tokenizer`: a character-level `PreTrainedTokenizerFast` with a chat template;
- `model`: the LlamaForCausalLM configuration, save and load of checkpoints;
- `train`: the supervised loop (pretraining, teacher, distillation);
- `pretrain`, `teacher`: their corpora; `rl`: compact GRPO over the project's decode engine;
- `vision`: the task drawn as images, the LLaVA processor and a tiny LLaVA (vlm-base, vlm-rl), the
  visual benchmark;
- `build`: the whole family under `models/<experiment>/` with fingerprints, so unchanged stages
  are reused.
"""
