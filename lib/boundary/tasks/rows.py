"""Reading benchmark rows, from the Hugging Face hub (through `datasets`) or from a local copy.

Every row travels with `where` it came from ("data/gsm8k/test.jsonl:17", or the hub dataset,
split and row index), so a malformed row is an error that names its file and line.

Local files are read here rather than with `datasets.load_dataset("json", ...)`: the JSON builder
cannot name the line of a malformed row, infers one Arrow schema for all rows (evalplus test
inputs mix types from row to row and break it), and cannot read MathVista's dict-of-records
layout. Hub datasets go through `datasets.load_dataset`; release files that live outside the
hub (evalplus) are fetched and cached by `datasets.DownloadManager`, then read as local files.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from boundary.tasks.problem import TaskError


@dataclass(frozen=True)
class Row:
    """One raw benchmark row and where it came from."""

    data: dict  # the row as read (a JSON object, or a hub dataset row)
    where: str  # "path:line" or "hub <id> split <split> row <i>", for error messages
    index: int  # 0-based position in its source
    folder: Path | None  # folder of the local file (image paths are relative to it); None: hub

    def get(self, name: str, kind: type | tuple[type, ...] = str, *, optional: bool = False) -> Any:
        """Field `name`, checked to be of `kind`; a TaskError naming the row when it is not."""
        value = self.data.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, kind):
            got = "missing" if name not in self.data else f"a {type(value).__name__}"
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise TaskError(f"{self.where}: field {name!r} should be a {want}, it is {got}")
        return value

    def fail(self, msg: str) -> TaskError:
        """A TaskError naming this row."""
        return TaskError(f"{self.where}: {msg}")


def _open_text(path: Path) -> str:
    """The text of a (possibly gzipped) UTF-8 file."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                return f.read()
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise TaskError(f"{path}: cannot read: {e}") from e


def _jsonl(path: Path, text: str) -> Iterator[Row]:
    """One Row per non-blank line of a JSON-lines file."""
    index = 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise TaskError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(data, dict):
            raise TaskError(f"{where}: a row must be a JSON object, got {type(data).__name__}")
        yield Row(data, where, index, path.parent)
        index += 1


def _json_document(path: Path, text: str) -> Iterator[Row]:
    """One Row per element of a top-level JSON array, or per value of a top-level JSON object
    (MathVista's testmini.json maps problem ids to records), each with the line it starts on."""
    decoder = json.JSONDecoder()
    pos, line, counted = 0, 1, 0  # parse position; line number of `counted` (lines counted lazily)

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def decode(i: int) -> tuple[Any, int]:
        try:
            return decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise TaskError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None

    def expect(i: int, char: str) -> int:
        i = skip(i)
        if i >= len(text) or text[i] != char:
            at = text.count("\n", 0, i) + 1
            raise TaskError(f"{path}:{at}: not valid JSON (expected {char!r})")
        return i + 1

    pos = skip(pos)
    if pos >= len(text) or text[pos] not in "[{":
        raise TaskError(f"{path}:1: expected a JSON array or object of rows")
    is_object, close = text[pos] == "{", "]}"[text[pos] == "{"]
    pos, index = pos + 1, 0
    while True:
        pos = skip(pos)
        if pos < len(text) and text[pos] == close:
            return
        if index:
            pos = skip(expect(pos, ","))
        if is_object:
            key, pos = decode(pos)
            pos = skip(expect(pos, ":"))
        line += text.count("\n", counted, pos)
        counted = pos
        data, pos = decode(pos)
        where = f"{path}:{line}"
        if not isinstance(data, dict):
            raise TaskError(f"{where}: a row must be a JSON object, got {type(data).__name__}")
        yield Row(data, where, index, path.parent)
        index += 1


def _parquet(path: Path) -> Iterator[Row]:
    """One Row per row of a Parquet file (binary columns, e.g. PNG images, arrive as bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise TaskError(f"{path}: not a readable Parquet file ({e})") from e
    for i, data in enumerate(table.to_pylist()):
        yield Row(data, f"{path} row {i}", i, path.parent)


def read_file(path: Path) -> Iterator[Row]:
    """Rows of a local .jsonl, .jsonl.gz, .json or .parquet file, each naming its file and line (row)."""
    if not path.is_file():
        raise TaskError(f"{path}: no such file")
    if path.name.endswith(".parquet"):
        return _parquet(path)
    text = _open_text(path)
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl"):
        return _jsonl(path, text)
    if name.endswith(".json"):
        return _json_document(path, text)
    raise TaskError(f"{path}: unknown file type (expected .jsonl, .jsonl.gz, .json or .parquet)")


def read_hub(path: str, config: str | None, split: str, revision: str | None,
             raw_images: tuple[str, ...] = ()) -> Iterator[Row]:
    """Rows of a hub dataset through `datasets.load_dataset`; image columns in `raw_images` are
    left undecoded (`{"bytes": ..., "path": ...}`) so the image bytes pass through unchanged."""
    import datasets  # imported here: loading the registry must not pay for it

    ds = datasets.load_dataset(path, config, split=split, revision=revision)
    for column in raw_images:
        ds = ds.cast_column(column, datasets.Image(decode=False))
    label = f"hub {path}" + (f" ({config})" if config else "") + (f"@{revision}" if revision else "")
    for i, data in enumerate(ds):
        yield Row(dict(data), f"{label} split {split} row {i}", i, None)


def read_url(url: str) -> Iterator[Row]:
    """Rows of a release file published at `url` (downloaded once and cached by `datasets`)."""
    import datasets

    local = datasets.DownloadManager().download(url)
    return read_file(Path(local))
