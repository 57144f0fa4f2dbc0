"""Where a file's integrity is checked: sha256, against the registry, once per file per run.

A `Verified` file carries its path and digest together, so the loader, the job record and the
vocoders reuse the digest instead of reading the file again. For a registry model without a published
sha256 (GSLM's unit LMs), the expected digest is the one recorded beside the file at its first download.
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
    expected = expected_sha256(path, known) if known is not None else None
    if expected is not None and digest != expected:
        raise IntegrityError(
            f"{path}: sha256 {digest[:16]}... does not match registry model {known.name!r} "
            f"({expected[:16]}...{'' if known.sha256 else ', recorded at its first download'}): refusing to "
            f"unpickle it. Delete it and run `textless-stack models fetch {known.name}`.")
    return Verified(path, digest)


def record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def expected_sha256(path: Path, model: registry.Model) -> str | None:
    """The registry's sha256, else the digest recorded at the first download (None: neither)."""
    if model.sha256:
        return model.sha256
    record = record_path(path)
    return record.read_text().split()[0] if record.is_file() else None


def matches(path: Path, model: registry.Model) -> Verified | None:
    """`path` verified as registry `model`, or None when it is not (absent or other bytes)."""
    expected = expected_sha256(path, model)
    if not path.is_file() or expected is None:
        return None
    digest = sha256_file(path)
    return Verified(path, digest) if digest == expected else None
