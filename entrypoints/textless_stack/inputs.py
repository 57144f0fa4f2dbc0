"""What to process: a directory, a glob, a fairseq tsv manifest, or JSONL -> an ordered list of items."""

from __future__ import annotations

import glob
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".w64"}


class InputError(UserError):
    pass


@dataclass(frozen=True)
class Item:
    path: Path            # where to read the audio
    key: str              # relative path: names outputs and identifies the file in units/errors
    samples: int | None = None   # from a tsv manifest, when known
    extra: dict = field(default_factory=dict, hash=False, compare=False)  # JSONL fields carried through
    root: Path | None = field(default=None, compare=False)  # the input directory it was found under


def collect(spec: str) -> list[Item]:
    """Items in a deterministic order (sorted for directories and globs, file order for manifests)."""
    path = Path(spec)
    if path.is_dir():
        try:
            files = sorted(p for p in path.rglob("*") if _audio_entry(p))
        except OSError as e:  # the directory went away (or became unreadable) while it was listed
            raise InputError(f"{spec}: cannot list the input directory: {e.strerror or e}") from None
        return [Item(p, p.relative_to(path).as_posix(), root=path) for p in files]
    if path.is_file() and path.suffix == ".tsv":
        return _tsv(path)
    if path.is_file() and path.suffix in (".jsonl", ".json"):
        return _jsonl(path)
    if path.is_file():
        return [Item(path, path.name)]
    matches = sorted(glob.glob(spec, recursive=True))
    if not matches:
        raise InputError(f"{spec}: no such file or directory, and no file matches it as a glob")
    root = Path(_glob_root(spec))
    return [Item(Path(m), Path(m).relative_to(root).as_posix(), root=root) for m in matches if _file_like(Path(m))]


def _file_like(path: Path) -> bool:
    """A file, or a symlink that does not resolve to a directory: a dangling or looping link is an input
    that fails on its own (listed and counted), never one that silently vanishes."""
    return path.is_file() or (path.is_symlink() and not path.is_dir())


def _audio_entry(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES and _file_like(path)


def _glob_root(spec: str) -> str:
    """The literal directories before the first wildcard: outputs mirror the tree below them."""
    fixed = list(itertools.takewhile(lambda part: not any(ch in part for ch in "*?["), Path(spec).parts[:-1]))
    return str(Path(*fixed)) if fixed else "."


def _tsv(path: Path) -> list[Item]:
    """fairseq's manifest: the root directory, then `relative/path<TAB>num_samples` per line."""
    lines = path.read_text().splitlines()
    if not lines:
        raise InputError(f"{path}: empty manifest (expected a root directory line)")
    root = Path(lines[0].strip())
    root_exists = root.is_dir()  # else each file fails on its own, not as a directory that vanished
    items = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[1].strip().isdigit():
            raise InputError(f"{path}:{n}: expected 'relative/path<TAB>num_samples', got {line!r}")
        items.append(Item(root / fields[0], fields[0], samples=int(fields[1]), root=root if root_exists else None))
    return items


def _jsonl(path: Path) -> list[Item]:
    items = []
    base = path.parent
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{n}: not JSON: {e}") from None
        if not isinstance(record, dict) or "path" not in record:
            raise InputError(f'{path}:{n}: expected an object with a "path" field')
        audio = Path(record["path"])
        full = audio if audio.is_absolute() else base / audio
        extra = {k: v for k, v in record.items() if k != "path"}
        items.append(Item(full, record["path"].lstrip("/"), extra=extra))
    return items


def check_unique(items: list[Item]) -> None:
    """Outputs are named by key without its suffix: two inputs must not claim one output."""
    seen: dict[str, str] = {}
    for item in items:
        stem = str(Path(item.key).with_suffix(""))
        if stem in seen:
            raise InputError(f"{seen[stem]} and {item.key} would write the same outputs ({stem}.*): rename one")
        seen[stem] = item.key


def shard(items: list[Item], index: int, count: int) -> list[Item]:
    """Contiguous ranges, as fairseq's dump scripts shard: concatenating shards 0..n-1 restores the order."""
    if not 0 <= index < count:
        raise InputError(f"shard index {index} is outside 0..{count - 1}")
    start, end = round(len(items) * index / count), round(len(items) * (index + 1) / count)
    return items[start:end]
