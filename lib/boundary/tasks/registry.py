"""The benchmark registry: where each benchmark lives, how its rows become `Problem`s, and `load()`.

A benchmark loads from the Hugging Face hub by default (dataset id, config, split and revision
below), or from a local copy when `source` is given (params: `benchmarks[].source`): a file, or
a folder holding the file named in `local` (and, for visual benchmarks, an `images/` folder).

Hub revisions: nothing on the hub can be reached from where this was written, so no dataset
commit could be looked up; every `revision` is None (the default branch) and marked UNPINNED.
Pin one with `benchmarks[].revision` in params (or here) before a paper-scale run.

Registering a benchmark is one entry of REGISTRY. The miniature's held-out sets are written by
`make models` as a local benchmark folder (`models/<family>/benchmark/{test,unseen}.jsonl`, and
`benchmark/visual/test.parquet` with images), so they load like any local copy; they alone carry
a trace checker (`trace_checker`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Literal

from boundary import ROOT
from boundary.tasks import arith, parse
from boundary.tasks.problem import Problem, TaskError
from boundary.tasks.rows import Row, read_file, read_hub, read_url


class MissingImagesWarning(UserWarning):
    """A visual benchmark loaded without (some of) its images: fine for counting, not for prompting."""


@dataclass(frozen=True)
class Hub:
    """Where a benchmark lives online."""

    path: str | None  # dataset id on the Hugging Face hub (None: `url` instead)
    split: str = "test"  # the split that is the benchmark
    config: str | None = None  # dataset config (subset) name
    revision: str | None = None  # pinned dataset commit; None: the default branch (UNPINNED)
    images: tuple[str, ...] = ()  # image columns read as raw bytes rather than decoded
    url: str | None = None  # a release file outside the hub, fetched and cached by `datasets`
    confirmed: bool = True  # False: id/config/fields seen only in third-party code, not the card


@dataclass(frozen=True)
class Spec:
    """One registry entry."""

    parse: Callable[[Row, str], Problem]  # one row -> Problem (boundary.tasks.parse)
    local: str  # file name inside a local folder source (the layout of ../shared/data/benchmarks)
    kind: Literal["math", "code", "visual"] = "math"  # which prompts it needs (boundary.tasks.templates)
    hub: Hub | None = None  # the default online source
    count: int | None = None  # problems in the full benchmark (the tests check the shared copies)
    rows: Callable[[str | None], Iterable[Row]] | None = None  # custom row source: source -> rows
    trace: Callable[[Problem, str], bool] | None = None  # trace checker: right answer by valid steps


REGISTRY: dict[str, Spec] = {
    # Math (the paper's Figure 2): question + gold answer, graded by Math-Verify.
    "gsm8k": Spec(parse.gsm8k, "test.jsonl", hub=Hub("openai/gsm8k", config="main"), count=1319),
    "math500": Spec(parse.math500, "test.jsonl", hub=Hub("HuggingFaceH4/MATH-500"), count=500),
    # math-ai/minervamath (question, answer) is the mirror third-party evaluators load; the local
    # copy is Qwen2.5-Math's minerva_math/test.jsonl (answer inside the solution's \boxed{}).
    "minerva_math": Spec(parse.minerva_math, "test.jsonl", hub=Hub("math-ai/minervamath", confirmed=False), count=272),
    # The 675 English open-ended text-only competition-math problems.
    "olympiadbench": Spec(parse.olympiadbench, "test.jsonl",
                          hub=Hub("Hothan/OlympiadBench", split="train", config="OE_TO_maths_en_COMP", confirmed=False),
                          count=675),
    "aime24": Spec(parse.competition, "test.jsonl", hub=Hub("HuggingFaceH4/aime_2024", split="train"), count=30),
    "amc23": Spec(parse.competition, "test.jsonl", hub=Hub("math-ai/amc23"), count=40),
    # Code (the paper's Figure 3): evalplus release files, as evalplus itself downloads them (the
    # hub copies evalplus/humanevalplus and evalplus/mbppplus lack the base/plus inputs).
    "humaneval_plus": Spec(parse.humaneval_plus, "HumanEvalPlus-v0.1.10.jsonl.gz", kind="code", hub=Hub(
        None, url="https://github.com/evalplus/humanevalplus_release/releases/download/v0.1.10/HumanEvalPlus.jsonl.gz"),
        count=164),
    "mbpp_plus": Spec(parse.mbpp_plus, "MbppPlus-v0.2.0.jsonl.gz", kind="code", hub=Hub(
        None, url="https://github.com/evalplus/mbppplus_release/releases/download/v0.2.0/MbppPlus.jsonl.gz"),
        count=378),
    # LiveCodeBench v5 problems dated 2024-08-01..2025-02-01, as DeepCoder (rllm) evaluates them,
    # with public and private tests. The shared local copy holds the public tests only.
    "livecodebench": Spec(parse.livecodebench, "lcb_v5_2408_2502_public_only.json", kind="code",
                          hub=Hub("agentica-org/DeepCoder-Preview-Dataset", config="lcbv5", confirmed=False), count=279),
    # Visual (the paper's Figure 4), filtered to free-form items with drop_multiple_choice.
    "mathvista": Spec(parse.mathvista, "testmini.json", kind="visual",
                      hub=Hub("AI4Math/MathVista", split="testmini", images=("decoded_image",)), count=1000),
    "mathvision": Spec(parse.mathvision, "testmini.jsonl", kind="visual",
                       hub=Hub("MathLLMs/MathVision", split="testmini", images=("decoded_image",)), count=304),
    # The miniature world's held-out sets (boundary.miniature.task), local only: `source` is the
    # folder `make models` writes. Each step of a trace is checkable, hence the trace checker.
    "miniature": Spec(parse.miniature, "test.jsonl", trace=lambda p, text: arith.check_trace(p.question, text)),
    "miniature-unseen": Spec(parse.miniature, "unseen.jsonl",
                             trace=lambda p, text: arith.check_trace(p.question, text)),
    # The miniature's visual benchmark: the `test`-like problems drawn as images (the folder
    # `make models` writes for an experiment with a vision section: <out>/benchmark/visual).
    "miniature-visual": Spec(parse.miniature_visual, "test.parquet", kind="visual",
                             trace=lambda p, text: arith.check_trace(p.meta["expression"], text)),
}


def names() -> list[str]:
    """Registered benchmark names."""
    return sorted(REGISTRY)


def kind(name: str) -> str:
    """The benchmark's kind: "math", "code" or "visual" (visual ones need a vision-language model)."""
    return _spec(name).kind


def trace_checker(name: str) -> Callable[[Problem, str], bool] | None:
    """The benchmark's trace checker (right answer by valid steps), or None when it has none."""
    return _spec(name).trace


def _spec(name: str) -> Spec:
    if name not in REGISTRY:
        raise TaskError(f"no benchmark {name!r}; registered: {', '.join(names())}")
    return REGISTRY[name]


def _local_rows(spec: Spec, name: str, source: str | Path) -> Iterable[Row]:
    """Rows of a local copy: `source` is the file itself or a folder holding `spec.local`."""
    path = Path(source)
    path = path if path.is_absolute() else ROOT / path
    if path.is_dir():
        path = path / spec.local
    if not path.is_file():
        raise TaskError(f"{name}: local source {path} does not exist (expected the file, or a folder with {spec.local})")
    return read_file(path)


def _hub_rows(spec: Spec, name: str, revision: str | None) -> Iterable[Row]:
    """Rows from the benchmark's online home (hub dataset or release file)."""
    hub = spec.hub
    if hub is None:
        raise TaskError(f"{name}: no online source is registered; give a local `source`")
    if hub.url is not None:
        if revision is not None:
            raise TaskError(f"{name}: its release file is pinned by its URL ({hub.url}); remove `revision`")
        return read_url(hub.url)
    return read_hub(hub.path, hub.config, hub.split, revision or hub.revision, hub.images)


def load(name: str, source: str | Path | None = None, limit: int | None = None,
         drop_multiple_choice: bool = False, revision: str | None = None) -> list[Problem]:
    """The problems of benchmark `name`, in source order.

    source: local file or folder (relative to the repository root), else the hub.
    limit: keep the first `limit` problems (after dropping multiple choice).
    drop_multiple_choice: remove "choice" problems, as the paper does for MathVista/MathVision.
    revision: hub dataset revision overriding the registry's (unused for local copies).
    Raises TaskError naming the file and line (or hub row) of a malformed row. Warns
    (MissingImagesWarning) when a visual benchmark's images are absent.
    """
    spec = _spec(name)
    if spec.rows is not None:
        rows = spec.rows(None if source is None else str(source))
    elif source is not None:
        rows = _local_rows(spec, name, source)
    else:
        rows = _hub_rows(spec, name, revision)
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for row in rows:
        try:
            problem = spec.parse(row, name)
        except (TaskError, KeyError, TypeError, ValueError, AttributeError) as e:  # name the row in every case
            if isinstance(e, TaskError) and str(e).startswith(row.where):
                raise
            raise TaskError(f"{row.where}: {type(e).__name__}: {e}") from e
        if problem.id in seen:
            raise TaskError(f"{row.where}: duplicate problem id {problem.id!r} (first at {seen[problem.id]})")
        seen[problem.id] = row.where
        if drop_multiple_choice and problem.answer_type == "choice":
            continue
        problems.append(problem)
        if limit is not None and len(problems) >= limit:
            break
    missing = [p for p in problems if p.visual and p.image is None]
    if missing:
        folder = Path(source) if source is not None else None
        warnings.warn(MissingImagesWarning(
            f"{name}: {len(missing)} of {len(problems)} problems have no image (e.g. {missing[0].id}, expected "
            f"{missing[0].meta.get('image_path')!r} under {folder if folder else 'the hub row'}); they can be "
            "counted but not prompted: give a source folder with the images/ folder"), stacklevel=2)
    return problems


def load_benchmark(benchmark) -> list[Problem]:
    """The problems of one params `benchmarks[]` entry (a boundary.config.Benchmark)."""
    return load(benchmark.name, benchmark.source, benchmark.limit, benchmark.drop_multiple_choice,
                benchmark.revision)
