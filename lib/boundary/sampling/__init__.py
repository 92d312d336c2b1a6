"""Sampling many answers per problem: the decode engine, backends (transformers, vllm), the runner.

`decode` is the batched KV-cache decoder with counter-based per-sample noise; `backends` wraps it
(and vLLM) behind one protocol; `stops` says when a sample ends (per model, template and problem
kind); `runner` streams their completions into `boundary.store`.
"""
from boundary.sampling.stops import StopRule, stop_rule

__all__ = ["StopRule", "stop_rule"]
