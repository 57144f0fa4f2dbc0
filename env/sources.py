"""Fetch one upstream source tree at its pinned commit, or its stand-in, and say which.

    python env/sources.py fairseq DEST [--local DIR] [--uv UV]

Order of preference:
  1. --local DIR (or $FAIRSEQ_SRC / $TEXTLESSLIB_SRC): a git checkout must contain the
     pinned commit, which is exported exactly (uncommitted edits are ignored); a plain
     directory is copied (symlinks kept as symlinks) and recorded as "commit unverified";
  2. git at the pinned commit;
  3. the stand-in sdist (fairseq only), resolved by uv from the package index and
     verified by sha256, with a loud line saying so.
The record (JSON, on stdout and in DEST/.textless-source.json) goes into manifests.
Exit 3 when no source can be had (textlesslib offline).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import pins as pins_mod

RECORD = ".textless-source.json"
GIT_TIMEOUT_S = 300


class Unavailable(Exception):
    pass


def log(msg: str) -> None:
    print(f"sources: {msg}", file=sys.stderr, flush=True)


def from_local(local: Path, dest: Path, commit: str) -> dict:
    if (local / ".git").exists():
        probe = subprocess.run(["git", "-C", str(local), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
        if probe.returncode != 0:
            raise SystemExit(f"sources: {local} is a git checkout without the pinned commit {commit}")
        archive = subprocess.run(["git", "-C", str(local), "archive", "--format=tar", commit], check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest)
        return {"kind": "local-git", "commit": commit, "commit_verified": True}
    log(f"WARNING: {local} is not a git checkout: copied as is, commit NOT verified")
    # symlinks as symlinks, as git and `git archive` give them: upstream has dangling ones
    # (fairseq's examples/wav2vec/unsupervised/kaldi_self_train/st/{steps,utils} point into a Kaldi tree)
    shutil.copytree(local, dest, symlinks=True, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".git", "build", "*.egg-info"))
    return {"kind": "local-dir", "commit": commit, "commit_verified": False}


def from_git(url: str, dest: Path, commit: str) -> dict:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(dest), *args], check=True, capture_output=True, timeout=GIT_TIMEOUT_S)

    try:
        git("init", "-q")
        git("fetch", "-q", "--depth", "1", url, commit)
        git("checkout", "-q", "FETCH_HEAD")
        head = subprocess.run(["git", "-C", str(dest), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        stderr = getattr(e, "stderr", b"") or b""
        raise Unavailable(f"git fetch of {url}@{commit[:7]} failed: {stderr.decode(errors='replace').strip()[:200]}")
    if head != commit:
        raise SystemExit(f"sources: git gave {head}, expected {commit}")
    shutil.rmtree(dest / ".git")
    return {"kind": "git", "url": url, "commit": commit, "commit_verified": True}


def sdist_url(package: str, version: str, filename: str, uv: str) -> str:
    """Ask uv (the configured package index) where the sdist lives."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [uv, "pip", "compile", "-", "--quiet", "--no-deps", "--no-binary", package,
             "--format", "pylock.toml", "-o", f"{tmp}/pylock.toml"],
            input=f"{package}=={version}\n", text=True, check=True, capture_output=True,
        )
        lock = Path(tmp, "pylock.toml").read_text()
    m = re.search(r'url = "([^"]+/' + re.escape(filename) + ')"', lock)
    if not m:
        raise Unavailable(f"the package index has no {filename}")
    return m.group(1)


def from_standin(standin: dict, dest: Path, cache: Path, uv: str) -> dict:
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / standin["sdist"]
    if not archive.exists() or sha256_file(archive) != standin["sha256"]:
        url = sdist_url(standin["package"], standin["version"], standin["sdist"], uv)
        log(f"downloading {standin['sdist']}")
        partial = archive.with_suffix(".partial")
        with urllib.request.urlopen(url, timeout=120) as r, open(partial, "wb") as out:
            shutil.copyfileobj(r, out)
        partial.replace(archive)
    digest = sha256_file(archive)
    if digest != standin["sha256"]:
        archive.unlink()
        raise SystemExit(f"sources: {archive.name} sha256 {digest} != pinned {standin['sha256']}: refusing it")
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/")[0]
        tar.extractall(dest.parent / ".standin-extract")
    shutil.copytree(dest.parent / ".standin-extract" / top, dest, dirs_exist_ok=True)
    shutil.rmtree(dest.parent / ".standin-extract")
    return {"kind": "standin-sdist", "package": f"{standin['package']}=={standin['version']}",
            "sha256": digest, "commit": None, "commit_verified": False}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(project: str, dest: Path, local: Path | None, uv: str, cache: Path) -> dict:
    pin = pins_mod.load()["sources"][project]
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if local:
        record = from_local(local, dest, pin["commit"])
    else:
        try:
            record = from_git(pin["git"], dest, pin["commit"])
        except Unavailable as e:
            if "standin" not in pin:
                raise Unavailable(f"{project} source not available: {e}; pass a local copy with --local "
                                  f"(or ${project.upper()}_SRC)")
            log(f"{e}")
            log("=" * 72)
            log(f"USING THE STAND-IN for {project}: {pin['standin']['sdist']} (not commit {pin['commit'][:7]})")
            log("=" * 72)
            shutil.rmtree(dest)
            dest.mkdir()
            record = from_standin(pin["standin"], dest, cache, uv)
    record = {"project": project, "pinned_commit": pin["commit"], "standin": record["kind"] == "standin-sdist", **record}
    (dest / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("project", choices=["fairseq", "textlesslib"])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--local", type=Path, help="local source directory (default: $FAIRSEQ_SRC / $TEXTLESSLIB_SRC)")
    ap.add_argument("--uv", default="uv")
    ap.add_argument("--cache", type=Path, help="where downloaded sdists are kept (default: DEST/..)")
    args = ap.parse_args(argv)
    local = args.local or (Path(os.environ[v]) if os.environ.get(v := f"{args.project.upper()}_SRC") else None)
    try:
        record = fetch(args.project, args.dest, local, args.uv, args.cache or args.dest.parent)
    except Unavailable as e:
        shutil.rmtree(args.dest, ignore_errors=True)  # no empty tree may pass for a source
        log(str(e))
        return 3
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
