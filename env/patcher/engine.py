"""The patch engine: apply named, counted text transforms to a source tree.

A transform says which file, what upstream text it expects (literal or regex),
what to write instead, how many places it must change for each known upstream
flavour, and how to recognise its own result (`done`). The engine never guesses:

- `done` already present as often as required  -> "already applied", file untouched;
- otherwise `find` must match exactly `count` times, else PatchMismatch (loud);
- after writing, `done` must be present, else the transform itself is broken.

Stdlib only: it runs in Docker build stages before any environment exists.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence


class PatchError(Exception):
    """Base class: the source tree is not what the patch table expects."""


class PatchMismatch(PatchError):
    pass


class UnknownFlavour(PatchError):
    pass


@dataclass(frozen=True)
class Transform:
    name: str
    path: str
    find: str
    replace: str
    count: Mapping[str, int]  # flavour -> places; a flavour not listed is not patched
    done: str = ""             # regex recognising the result; default: the literal replacement
    regex: bool = False
    why: str = ""
    example: str = ""          # one upstream place `find` matches (regex transforms); tests use it

    def sample(self) -> str:
        """One place of upstream text this transform expects."""
        return self.example if self.regex else self.find

    def find_pattern(self) -> re.Pattern:
        return re.compile(self.find if self.regex else re.escape(self.find), re.M)

    def done_pattern(self) -> re.Pattern:
        return re.compile(self.done or re.escape(self.replace), re.M)


@dataclass(frozen=True)
class Project:
    """An upstream project: how to tell which flavour a tree is, and its transforms."""

    name: str
    detect: Callable[[Path], str]          # returns a flavour name or raises UnknownFlavour
    transforms: Sequence[Transform]
    relocate: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # flavour -> {prefix: new prefix}

    def path_for(self, transform: Transform, flavour: str) -> str:
        for old, new in self.relocate.get(flavour, {}).items():
            if transform.path.startswith(old):
                return new + transform.path[len(old):]
        return transform.path


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apply(project: Project, root: Path, flavour: str | None = None) -> dict:
    """Patch `root` in place; return the report (JSON-serialisable)."""
    root = Path(root)
    flavour = flavour or project.detect(root)
    files: dict[str, dict] = {}
    for t in project.transforms:
        if flavour not in t.count:
            continue
        rel = project.path_for(t, flavour)
        entry = files.get(rel)
        if entry is None:
            path = root / rel
            if not path.is_file():
                raise PatchMismatch(f"{project.name}: {rel}: file not found (transform {t.name})")
            text = path.read_text()
            entry = files[rel] = {"path": rel, "sha256_before": sha256_text(text), "text": text, "transforms": []}
        entry["transforms"].append(_apply_one(t, entry, rel, t.count[flavour]))
    changed = 0
    report_files = []
    for rel, entry in files.items():
        text = entry.pop("text")
        entry["sha256_after"] = sha256_text(text)
        if entry["sha256_after"] != entry["sha256_before"]:
            _replace_file(root / rel, text)
            changed += 1
        report_files.append(entry)
    statuses = [tr["status"] for f in report_files for tr in f["transforms"]]
    return {
        "project": project.name,
        "flavour": flavour,
        "files_changed": changed,
        "transforms_applied": statuses.count("applied"),
        "transforms_already_applied": statuses.count("already applied"),
        "files": report_files,
    }


def _replace_file(path: Path, text: str) -> None:
    # a new inode, never an in-place write: installers (uv) hardlink files from their cache
    tmp = path.with_name(path.name + ".textless-tmp")
    tmp.write_text(text)
    shutil.copymode(path, tmp)
    os.replace(tmp, path)


def _apply_one(t: Transform, entry: dict, rel: str, expected: int) -> dict:
    text = entry["text"]
    done = len(t.done_pattern().findall(text))
    if done >= expected:
        return {"name": t.name, "places": expected, "status": "already applied"}
    found = len(t.find_pattern().findall(text))
    if found != expected:
        raise PatchMismatch(
            f"{t.name}: {rel}: expected {expected} place(s) matching\n    {t.find!r}\n"
            f"found {found}. Upstream changed: update the transform in env/patcher/, never skip it."
        )
    if t.regex:
        new = t.find_pattern().sub(t.replace, text)
    else:
        new = text.replace(t.find, t.replace)
    if len(t.done_pattern().findall(new)) < expected:
        raise PatchError(f"{t.name}: {rel}: its result does not match its own `done` pattern")
    entry["text"] = new
    return {"name": t.name, "places": expected, "status": "applied"}
