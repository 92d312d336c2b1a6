"""Benchmarks and prompts: the registry of real benchmarks, their normalized `Problem` records,
and the prompt templates that turn a problem into model input.

    from boundary import tasks
    problems = tasks.load("math500")                                   # from the hub
    problems = tasks.load("math500", source="../shared/data/benchmarks/math500")  # a local copy
    text = tasks.render("qwen-boxed", problems[0])                     # the paper's prompt
    key = tasks.template_hash("qwen-boxed")                            # for the sample store

Modules: `problem` (the record), `rows` (reading hub and local rows with file:line), `parse`
(one row layout -> Problem per benchmark), `registry` (where each benchmark lives, `load`),
`templates` (prompt templates and their hashes).
"""
from boundary.tasks.problem import ANSWER_TYPES, Problem, TaskError
from boundary.tasks.registry import (REGISTRY, Hub, MissingImagesWarning, Spec, kind, load, load_benchmark, names,
                                     trace_checker)
from boundary.tasks.templates import TEMPLATES, encode, render, same_for_pair, template_hash

__all__ = ["ANSWER_TYPES", "Problem", "TaskError", "REGISTRY", "Hub", "MissingImagesWarning", "Spec", "kind", "load",
           "load_benchmark", "names", "trace_checker", "TEMPLATES", "encode", "render", "same_for_pair", "template_hash"]
