"""The model cache: where registry models live on disk, and how they get there (atomically, verified).

Location: $TEXTLESS_STACK_MODELS, else $XDG_CACHE_HOME/textless-stack/models, else
~/.cache/textless-stack/models. Never inside the image: bind or point it at scratch.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from . import integrity, registry
from .errors import UserError
from .integrity import Verified

log = logging.getLogger(__name__)

OFFLINE_ENV = "TEXTLESS_STACK_OFFLINE"
BAKED_ENV = "TEXTLESS_STACK_BAKED"  # read-only models an image was built with (`make image BAKE_MODELS=...`)


class ModelUnavailable(UserError):
    pass


def cache_dir() -> Path:
    if os.environ.get("TEXTLESS_STACK_MODELS"):
        return Path(os.environ["TEXTLESS_STACK_MODELS"])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "textless-stack" / "models"


def path_of(name: str) -> Path:
    return cache_dir() / get(name).fname


def get(name: str) -> registry.Model:
    try:
        return registry.MODELS[name]
    except KeyError:
        raise ModelUnavailable(f"unknown model {name!r}; `textless-stack models list` shows the registry") from None


def baked_path(name: str) -> Path | None:
    root = os.environ.get(BAKED_ENV)
    path = Path(root) / get(name).fname if root else None
    return path if path and path.exists() else None


def fetch(name: str, progress: bool = True) -> Path:
    """The path of a verified copy of `name`: baked into the image, or in the cache (downloaded if needed)."""
    return _fetch(name, progress).path


def _fetch(name: str, progress: bool = True) -> Verified:
    model = get(name)
    baked = baked_path(name)
    if baked is not None:
        verified = integrity.matches(baked, model)
        if verified is None:
            raise ModelUnavailable(f"{name}: the copy baked into this image ({baked}) fails its sha256 check")
        return verified
    dest = path_of(name)
    verified = integrity.matches(dest, model)
    if verified is not None:
        return verified
    if os.environ.get(OFFLINE_ENV) == "1":
        raise ModelUnavailable(_offline_message(name, dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + f".partial-{os.getpid()}")
    log.info("downloading %s -> %s", model.url, dest)
    try:
        with urllib.request.urlopen(model.url, timeout=60) as response, open(partial, "wb") as out:
            _copy(response, out, int(response.headers.get("Content-Length") or 0), model.name, progress)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        partial.unlink(missing_ok=True)
        raise ModelUnavailable(f"{_offline_message(name, dest)} (download failed: {getattr(e, 'reason', e)})") from None
    except BaseException:  # SIGTERM, Ctrl-C: no partial download left behind
        partial.unlink(missing_ok=True)
        raise
    digest = integrity.sha256_file(partial)
    if not model.sha256:  # nothing published: trust on first use, then hold every later use to it
        from .outputs import atomic

        with atomic(integrity.record_path(dest), "w") as f:
            f.write(f"{digest}  {dest.name}\n")
        log.warning("%s: upstream publishes no sha256; recorded %s at this first download in %s, and later "
                    "uses are verified against it", name, digest, integrity.record_path(dest))
    elif digest != model.sha256:
        partial.unlink()
        raise ModelUnavailable(f"{name}: downloaded file has sha256 {digest}, expected {model.sha256}: discarded")
    os.replace(partial, dest)
    return Verified(dest, digest)


def resolve(name_or_path: str) -> Verified:
    """A registry name (fetched if needed) or a path to a file: verified, hashed once."""
    if name_or_path in registry.MODELS:
        model = registry.MODELS[name_or_path]
        if model.unsupported:
            raise ModelUnavailable(f"{name_or_path}: not usable in this image: {model.unsupported}")
        return _fetch(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ModelUnavailable(f"{name_or_path}: neither a registry model nor an existing file")
    return integrity.verify(path)


def verify(name: str) -> str:
    dest = path_of(name)
    if not dest.exists():
        return "absent"
    if integrity.expected_sha256(dest, get(name)) is None:
        return "UNRECORDED (no published sha256, none recorded: fetch it again)"
    return "ok" if integrity.matches(dest, get(name)) else "CORRUPT"


def unpacked(name: str) -> tuple[Path, str]:
    """A registry archive (GSLM's unit LMs: .tgz; TWIST's: .zip), verified, unpacked once beside itself: (directory, its sha256).
    Unpacking takes only regular files and directories (tarfile's "data" filter)."""
    import shutil
    import tarfile
    import tempfile
    import zipfile

    archive = resolve(name)
    target = archive.path.with_name(archive.path.name + ".d")
    marker = target / ".unpacked-from"
    if marker.is_file() and marker.read_text().strip() == archive.sha256:
        return target, archive.sha256
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as e:
        raise ModelUnavailable(f"{target.parent}: cannot unpack {archive.path.name} there ({e.strerror}): run "
                               f"`textless-stack models fetch {name}` where that directory is writable") from None
    try:
        if zipfile.is_zipfile(archive.path):  # TWIST's LMs; zipfile drops absolute and ".." parts of names
            with zipfile.ZipFile(archive.path) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(archive.path) as tar:
                tar.extractall(tmp, filter="data")
        (tmp / ".unpacked-from").write_text(archive.sha256 + "\n")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as e:
        raise ModelUnavailable(f"{archive.path}: cannot unpack it: {e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target, archive.sha256


def _offline_message(name: str, dest: Path) -> str:
    return (f"model {name!r} is not in the cache ({dest}) and cannot be downloaded here; fetch it where there is "
            f"network (e.g. a login node) with `textless-stack models fetch {name}` into the same "
            f"TEXTLESS_STACK_MODELS directory")


def _copy(src, dst, total: int, label: str, progress: bool) -> None:
    from tqdm import tqdm

    with tqdm(total=total or None, unit="B", unit_scale=True, desc=label, disable=not progress) as bar:
        while block := src.read(1 << 20):
            dst.write(block)
            bar.update(len(block))
    dst.flush()
    os.fsync(dst.fileno())
