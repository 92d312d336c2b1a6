"""A vLLM engine in a process of its own: one model's engine at a time, gone when closed.

vLLM 0.32's `LLM` has no public shutdown: its memory (weights, KV cache, on a GPU the CUDA context)
is released only when the process that built it ends. So each engine the project builds (a
sampling backend per model, the perplexity scorer) lives in a child process started here, and
`Engine.close()` ends that process (waited for, then terminated, then killed if it hangs) before
the next model loads. The child is a fresh interpreter (`python -m boundary.sampling.engine`: no
forked torch threads or CUDA state, and unlike multiprocessing's `spawn` it never re-runs the
caller's script, so a script without a `__main__` guard works) that receives requests over a
socket pair; if the parent dies the socket breaks and the child exits with it.

Sampling streams: the child drives the engine itself (`LLMEngine.add_request` / `step`), keeping
up to `queue` requests queued in the engine (a finished one is replaced at once, so the
scheduler always has work) and sends each sample to the parent the moment it finishes. Scoring
(`prompt_logprobs`) answers one bounded batch of pairs at a time, each converted to a float64
array in the child before it is sent, so no vLLM logprob objects pile up.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from collections.abc import Iterator, Sequence

# Requests queued in the engine at once while sampling: well above what one step schedules
# (max_num_seqs, 256 by default), so the scheduler never waits, and small enough that a kill loses
# little queued prompt work (every unfinished sample is regenerated on resume anyway).
QUEUE = 1024
CLOSE_S = 30.0  # seconds the child gets to exit after being asked, before it is terminated


def _engine_args(model: str, revision: str | None, kv_cache_bytes: int | None, args: dict) -> dict:
    """vllm.LLM's keyword arguments: the caller's, with the project's KV cache size (backends.vllm_engine_args)."""
    from boundary.sampling.backends import vllm_engine_args

    return {"model": model, "revision": revision, **vllm_engine_args(kv_cache_bytes, args)}


def _image(data: bytes | None, label: str):
    """The PIL image of a request's image bytes, or None."""
    from boundary.sampling.backends import pil_image

    return None if data is None else pil_image(data, label)


def _prompt(ids: list[int], image: bytes | None, label: str):
    """vLLM's input for one request: its token ids, and its image as multi_modal_data (vLLM expands
    the single placeholder token of `ids` to the image's features)."""
    from vllm.inputs import TokensPrompt

    if image is None:
        return TokensPrompt(prompt_token_ids=ids)
    return TokensPrompt(prompt_token_ids=ids, multi_modal_data={"image": _image(image, label)})


def _sample(llm, conn, todo: list, queue: int) -> None:
    """Drive the engine over `todo` (label, prompt ids, image, SamplingParams keyword arguments),
    sending ("sample", index, text, finish_reason, prompt tokens, token ids) per finished request,
    then ("done",). An ("abort",) from the parent stops early: queued requests are aborted."""
    from vllm import SamplingParams

    engine = llm.llm_engine
    queued, index, nxt = set(), {}, 0  # request ids in the engine; request id -> position in todo
    while nxt < len(todo) or queued:
        while nxt < len(todo) and len(queued) < queue:
            label, ids, image, sp = todo[nxt]
            # vLLM 0.32 appends a random suffix to the id internally; outputs carry either, so both are kept
            internal = engine.add_request(str(nxt), _prompt(ids, image, label), SamplingParams(**sp))
            index[str(nxt)] = index[internal] = nxt
            queued.add(str(nxt))
            nxt += 1
        if conn.poll():  # the parent stopped reading (its generator was closed)
            conn.recv()
            engine.abort_request(sorted(queued))
            break
        for out in engine.step():
            if not out.finished:
                continue
            k = index[out.request_id]
            queued.discard(str(k))
            o = out.outputs[0]
            conn.send(("sample", k, o.text, o.finish_reason, len(out.prompt_token_ids), list(o.token_ids)))
    conn.send(("done",))


def _score(llm, items: list) -> list:
    """log p of each response token of (prompt ids, response length, image) under the engine: vLLM's
    prompt_logprobs of prompt + response, the last `response length` positions, as float64 arrays."""
    import numpy as np
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0, detokenize=False)
    outs = llm.generate([_prompt(ids, image, f"pair {i}") for i, (ids, _, image) in enumerate(items)], params,
                        use_tqdm=False)
    result = []
    for (ids, r, _), o in zip(items, outs):
        # prompt_logprobs[t] holds the token at t (and the top-0 others); its prompt_token_ids are the
        # expanded ones for an image prompt, so the response is counted from the end
        tokens = o.prompt_token_ids[-r:]
        result.append(np.array([pos[t].logprob for pos, t in zip(o.prompt_logprobs[-r:], tokens)], dtype=np.float64))
    return result


def _serve(conn, model: str, revision: str | None, kv_cache_bytes: int | None, args: dict) -> None:
    """The child process: build the engine, report what the parent needs, answer requests until closed."""
    try:
        import vllm

        from boundary.sampling.backends import is_vision_language
        from boundary.sampling.decode import placeholders

        llm = vllm.LLM(**_engine_args(model, revision, kv_cache_bytes, args))
        engine = llm.llm_engine
        config = engine.vllm_config
        conn.send(("ready", {"pid": os.getpid(), "version": vllm.__version__, "model": config.model_config.model,
                             "max_model_len": config.model_config.max_model_len,
                             "kv_cache_memory_bytes": config.cache_config.kv_cache_memory_bytes,
                             "enable_prefix_caching": config.cache_config.enable_prefix_caching,
                             "max_num_batched_tokens": config.scheduler_config.max_num_batched_tokens,
                             "vision": is_vision_language(config.model_config.hf_config),
                             "placeholders": sorted(placeholders(config.model_config.hf_config))}))
    except BaseException as e:  # noqa: BLE001 -- reported to the parent, which raises it
        _report(conn, e)
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        try:
            if msg[0] == "close":
                return
            if msg[0] == "sample":
                _sample(llm, conn, msg[1], msg[2])
            elif msg[0] == "score":
                conn.send(("scores", _score(llm, msg[1])))
        except (BrokenPipeError, EOFError):
            return
        except BaseException as e:  # noqa: BLE001
            _report(conn, e)


def _report(conn, e: BaseException) -> None:
    """Send an exception (or, if it cannot be pickled, its text) to the parent."""
    text = "".join(traceback.format_exception(e))
    try:
        conn.send(("error", e, text))
    except Exception:  # noqa: BLE001 -- an unpicklable exception travels as its text
        conn.send(("error", None, text))


class Engine:
    """A `vllm.LLM` in a child process (see the module docstring); `info` says what it built."""

    def __init__(self, model: str, revision: str | None = None, kv_cache_bytes: int | None = None, **engine_args):
        ours, theirs = socket.socketpair()
        lib = str(Path(__file__).resolve().parents[2])  # the child imports this very package
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([lib] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
        self.name = f"vllm-engine:{model}"  # in error messages
        self.process = subprocess.Popen([sys.executable, "-m", "boundary.sampling.engine", str(theirs.fileno())],
                                        pass_fds=[theirs.fileno()], env=env)
        theirs.close()
        self._conn = Connection(ours.detach())
        self._conn.send((model, revision, kv_cache_bytes, engine_args))
        # pid, version, model, max_model_len, kv_cache_memory_bytes, enable_prefix_caching,
        # max_num_batched_tokens, vision, placeholders: the built engine's settings
        self.info: dict = self._recv("ready")[0]

    def alive(self) -> bool:
        """Whether the engine's process is running."""
        return self.process.poll() is None

    @property
    def exitcode(self) -> int | None:
        """The engine process's exit status (None while it runs; negative: killed by that signal)."""
        return self.process.poll()

    def _recv(self, kind: str) -> tuple:
        """The next message's payload, which must be of `kind`; the child's exception re-raised."""
        return self._recv_any((kind,))[1:]

    def sample(self, todo: Sequence[tuple], queue: int = QUEUE) -> Iterator[tuple]:
        """(index into todo, text, finish_reason, prompt tokens, token ids) per request as it finishes;
        todo: (label, prompt ids, image bytes or None, SamplingParams keyword arguments)."""
        self._check_open()
        self._conn.send(("sample", list(todo), queue))
        finished = False
        try:
            while True:
                try:
                    msg = self._recv_any(("sample", "done"))
                except BaseException:
                    finished = True  # the child failed (it reported so, or died): nothing to abort
                    raise
                if msg[0] == "done":
                    finished = True
                    return
                yield msg[1:]
        finally:
            if not finished and self.alive():  # the caller stopped early: stop the engine's work
                self._conn.send(("abort",))
                while self._recv_any(("sample", "done"))[0] != "done":
                    pass

    def _recv_any(self, kinds: tuple[str, ...]) -> tuple:
        """The next message (kind first), which must be one of `kinds`."""
        try:
            msg = self._conn.recv()
        except (EOFError, OSError) as e:
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                pass
            raise RuntimeError(f"the vLLM engine process {self.name} died (exit code {self.exitcode})") from e
        if msg[0] == "error":
            raise (msg[1] or RuntimeError(msg[2])) from RuntimeError("in the vLLM engine process:\n" + msg[2])
        if msg[0] not in kinds:
            raise RuntimeError(f"vLLM engine process: expected one of {kinds}, got {msg[0]!r}")
        return msg

    def score(self, items: Sequence[tuple]) -> list:
        """Log-probabilities of each (prompt ids, response length, image bytes or None) as _score computes them."""
        self._check_open()
        self._conn.send(("score", list(items)))
        return self._recv("scores")[0]

    def _check_open(self) -> None:
        if not self.alive():
            raise RuntimeError(f"the vLLM engine process {self.name} is closed (exit code {self.exitcode})")

    def close(self) -> None:
        """End the engine's process and so free its memory: asked, then terminated, then killed."""
        if self.alive():
            try:
                self._conn.send(("close",))
            except (BrokenPipeError, OSError):
                pass
        for stop, wait in ((None, CLOSE_S), (self.process.terminate, 10), (self.process.kill, None)):
            if stop is not None and self.alive():
                stop()
            try:
                self.process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        if not self._conn.closed:
            self._conn.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if getattr(self, "process", None) is not None and self.alive():
            self.close()


if __name__ == "__main__":  # the child: python -m boundary.sampling.engine FD
    conn = Connection(int(sys.argv[1]))
    _serve(conn, *conn.recv())
