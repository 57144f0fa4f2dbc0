"""Where a file's integrity is checked: sha256, against the registry, once per file per run.

A `Verified` file carries its path and digest together, so the loader, the job record and the
vocoders reuse the digest instead of reading the file again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from . import registry
from .errors import UserError


class IntegrityError(UserError):
    """A file named like a registry model is not that model, byte for byte."""


@dataclass(frozen=True)
class Verified:
    path: Path
    sha256: str


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(source: "str | Path | Verified") -> Verified:
    """Hash a file once; a file named like a registry model must be that model (nothing of it is
    unpickled before). An already verified file passes through."""
    if isinstance(source, Verified):
        return source
    path = Path(source)
    digest = sha256_file(path)
    known = registry.by_fname(path.name)
    if known is not None and digest != known.sha256:
        raise IntegrityError(
            f"{path}: sha256 {digest[:16]}... does not match registry model {known.name!r} "
            f"({known.sha256[:16]}...): refusing to unpickle it. Delete it and run "
            f"`textless-stack models fetch {known.name}`.")
    return Verified(path, digest)


def matches(path: Path, model: registry.Model) -> Verified | None:
    """`path` verified as registry `model`, or None when it is not (absent or other bytes)."""
    if not path.is_file():
        return None
    digest = sha256_file(path)
    return Verified(path, digest) if digest == model.sha256 else None
