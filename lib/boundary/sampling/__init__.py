"""Sampling many answers per problem: the decode engine, backends (transformers, vllm), the runner.

`decode` is the batched KV-cache decoder with counter-based per-sample noise; `backends` wraps it
(and vLLM) behind one protocol; `runner` streams their completions into `boundary.store`.
"""
