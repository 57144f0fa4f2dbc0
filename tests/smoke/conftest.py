"""Smoke tests run INSIDE each built image, through one small "run this command" fixture.

Backends: `local` (the development environment, fast), `docker` (the image, run the way users on a
laptop and CI run it: no network, read-only root, tmpfs /tmp, uid 1000) and `apptainer` (the SIF, run
the way clusters run it: `exec --containall --cleanenv`, no home, no network, binds only). The same
test proves the same behaviour in each. Select with TEXTLESS_SMOKE_BACKENDS (default: all three).

A test that claims a property of how the images run asks for `sealed_container`: the same backends,
the local one then run in a mount namespace that enforces what Docker and Apptainer enforce.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import (built_sif, legacy_checkpoint, with_an_old_task_key, with_float_ints, with_parametrized_weight_norm,
                     write_audio)

IMAGE_ENV = "TEXTLESS_IMAGE"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class LocalRunner:
    name = "local"

    def __init__(self):
        self.bin = Path(sys.executable).parent

    def run(self, args, binds=(), entrypoint="textless-stack", env=None, timeout=600) -> Result:
        """binds: (host_path, container_path) pairs; locally the host path is used directly."""
        mapping = {c: str(h) for h, c in binds}
        args = [_remap(a, mapping) for a in args]
        exe = str(self.bin / entrypoint) if (self.bin / entrypoint).exists() else entrypoint
        return self._exec([exe, *args], [h for h, _ in binds], {**os.environ, **(env or {})}, timeout)

    def _exec(self, cmd, binds, env, timeout) -> Result:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        return Result(r.returncode, r.stdout, r.stderr)

    def path(self, host: Path, container: str) -> str:
        return str(host)

    def sealed(self) -> "SealedLocalRunner":
        return SealedLocalRunner()


# Run inside `unshare -m`: /tmp and each bind stay writable (bound onto themselves first, so that they are
# mounts of their own), every other filesystem but /proc, /sys and /dev is remounted read-only, then the
# command is exec'd. Mounts below a writable place are left as they are.
SEAL = r"""set -eu
n=$1; shift
keep=(/proc /sys /dev /tmp)
mount --bind /tmp /tmp
for _ in $(seq 1 "$n"); do mount --bind "$1" "$1"; keep+=("$1"); shift; done
kept() { for k in "${keep[@]}"; do case $1 in "$k"|"$k"/*) return 0 ;; esac; done; return 1; }
findmnt -rn -o TARGET | while read -r target; do
    target=$(printf '%b' "$target")
    kept "$target" || mount -o remount,bind,ro "$target"
done
exec "$@"
"""


class SealedLocalRunner(LocalRunner):
    """The local environment run as the images are: nothing but /tmp and the binds is writable
    (a private mount namespace, every other filesystem read-only), caches where the images put them
    (the variables `doctor` checks, under /tmp), and HOME as the caller gives it."""

    def _exec(self, cmd, binds, env, timeout) -> Result:
        if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("findmnt") is None:
            pytest.skip("sealing the local run needs root, unshare and findmnt: only the images enforce it here")
        from textless_stack.diagnose import CACHE_VARS

        writable = sorted({str(Path(h).resolve()) for h in binds})
        caches = tempfile.mkdtemp(prefix="textless-sealed-cache-")
        try:
            return super()._exec(
                ["unshare", "-m", "--propagation", "private", "bash", "-c", SEAL, "seal", str(len(writable)),
                 *writable, *cmd],
                binds, {**env, **{var: f"{caches}/{var.lower()}" for var in CACHE_VARS}}, timeout)
        finally:
            shutil.rmtree(caches, ignore_errors=True)


class DockerRunner:
    name = "docker"

    def __init__(self, image: str):
        self.image = image

    def run(self, args, binds=(), entrypoint=None, env=None, timeout=600) -> Result:
        cmd = ["docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp",
               "--user", "1000:1000"]
        for host, container in binds:
            cmd += ["-v", f"{host}:{container}"]
        for k, v in (env or {}).items():
            cmd += ["-e", f"{k}={v}"]
        if entrypoint:
            cmd += ["--entrypoint", entrypoint]
        r = subprocess.run([*cmd, self.image, *map(str, args)], capture_output=True, text=True, timeout=timeout)
        return Result(r.returncode, r.stdout, r.stderr)

    def path(self, host: Path, container: str) -> str:
        return container

    def sealed(self) -> "DockerRunner":
        return self  # read-only root, tmpfs /tmp, uid 1000: every run is sealed


class ApptainerRunner:
    name = "apptainer"

    def __init__(self, sif: str, state: str):
        self.sif, self.state = sif, state

    def command(self, *apptainer_args, binds=()):
        """apptainer (or the toolbox wrapper), no network, with the host dirs visible to it."""
        cmd = [str(REPO / "apptainer" / "apptainer.sh"), self.state, "--no-network",
               "--bind", str(Path(self.sif).parent)]
        for host, _ in binds:
            cmd += ["--bind", str(host)]
        return cmd + list(apptainer_args)

    def run(self, args, binds=(), entrypoint=None, env=None, timeout=900) -> Result:
        opts = ["--quiet", "exec", "--userns", "--containall", "--cleanenv", "--no-home"]
        for host, container in binds:
            opts += ["-B", f"{host}:{container}"]
        for k, v in (env or {}).items():
            opts += ["--env", f"{k}={v}"]
        cmd = self.command(*opts, self.sif, entrypoint or "textless-stack", *map(str, args), binds=binds)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return Result(r.returncode, r.stdout, r.stderr)

    def path(self, host: Path, container: str) -> str:
        return container

    def sealed(self) -> "ApptainerRunner":
        return self  # a read-only SIF, --containall, no home: every run is sealed

    @functools.cached_property
    def self_test(self) -> Result:
        """`apptainer test` (the def's %test: doctor, then selftest), run once per session: the
        doctor and selftest smoke tests read it rather than run both again in the SIF."""
        r = subprocess.run(self.command("test", "--userns", self.sif), capture_output=True, text=True, timeout=900)
        return Result(r.returncode, r.stdout, r.stderr)


def _remap(arg, mapping):
    arg = str(arg)
    for container, host in mapping.items():
        if arg == container or arg.startswith(container + "/"):
            return host + arg[len(container):]
    return arg


def _backends():
    return os.environ.get("TEXTLESS_SMOKE_BACKENDS", "local,docker,apptainer").split(",")


@pytest.fixture(params=_backends(), scope="session")
def container(request):
    if request.param == "local":
        return LocalRunner()
    if request.param == "docker":
        return docker_runner_of_this_run()
    if request.param == "apptainer":
        return apptainer_runner()
    raise ValueError(request.param)


@pytest.fixture
def sealed_container(container):
    """The same backend, sealed as the images run (see SealedLocalRunner)."""
    return container.sealed()


def docker_runner_of_this_run() -> DockerRunner:
    image = os.environ.get(IMAGE_ENV)
    if not image:
        pytest.skip(f"no image built in this run ({IMAGE_ENV} unset): `make test` builds one")
    if shutil.which("docker") is None:
        pytest.fail("docker client not found")
    probe = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"{IMAGE_ENV}={image} is not an image the engine has: {probe.stderr.strip()}")
    return DockerRunner(image)


@functools.lru_cache(maxsize=None)
def _apptainer_runner(sif: str, state: str) -> ApptainerRunner:
    return ApptainerRunner(sif, state)


def apptainer_runner() -> ApptainerRunner:
    """One runner per SIF: its `apptainer test` result is shared by every test that reads it."""
    return _apptainer_runner(*built_sif())


@pytest.fixture(scope="session")
def sif_runner():
    return apptainer_runner()


@pytest.fixture(scope="session")
def docker_runner():
    return docker_runner_of_this_run()


@pytest.fixture
def shared_dir(tmp_path):
    """A directory the container's uid 1000 can write (pytest's are root-only)."""
    def make(name):
        d = tmp_path / name
        d.mkdir()
        d.chmod(0o777)
        return d
    return make


@pytest.fixture
def shared_audio(shared_dir):
    """support.write_audio files in a directory of their own that the container's uid 1000 can read."""
    def make(name, spec):
        root = shared_dir(name)
        write_audio(root, spec)
        for p in root.rglob("*"):
            p.chmod(0o777 if p.is_dir() else 0o644)
        return root
    return make


@pytest.fixture(scope="session")
def legacy_checkpoints(tmp_path_factory):
    """A directory readable by uid 1000 with legacy.pt: a tiny HuBERT in three legacy vintages at once
    (integral floats, an old task key, parametrized weight norm)."""
    root = tmp_path_factory.mktemp("ckpts")
    root.chmod(0o755)
    path = legacy_checkpoint(root / "legacy.pt", with_float_ints, with_an_old_task_key, with_parametrized_weight_norm)
    path.chmod(0o644)
    return root
