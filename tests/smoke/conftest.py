"""Smoke tests run INSIDE each built image, through one small "run this command" fixture.

Backends: `local` (the development environment, fast), `docker` (the image, run the way users on a
laptop and CI run it: no network, read-only root, tmpfs /tmp, uid 1000) and `apptainer` (the SIF, run
the way clusters run it: `exec --containall --cleanenv`, no home, no network, binds only). The same
test proves the same behaviour in each. Select with TEXTLESS_SMOKE_BACKENDS (default: all three).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import built_sif

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
        r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, **(env or {})})
        return Result(r.returncode, r.stdout, r.stderr)

    def path(self, host: Path, container: str) -> str:
        return str(host)


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
        image = os.environ.get(IMAGE_ENV)
        if not image:
            pytest.skip(f"no image built in this run ({IMAGE_ENV} unset): `make test` builds one")
        if shutil.which("docker") is None:
            pytest.fail("docker client not found")
        probe = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.fail(f"{IMAGE_ENV}={image} is not an image the engine has: {probe.stderr.strip()}")
        return DockerRunner(image)
    if request.param == "apptainer":
        return apptainer_runner()
    raise ValueError(request.param)


def apptainer_runner() -> ApptainerRunner:
    return ApptainerRunner(*built_sif())


@pytest.fixture(scope="session")
def sif_runner():
    return apptainer_runner()


@pytest.fixture(scope="session")
def docker_runner():
    image = os.environ.get(IMAGE_ENV)
    if not image:
        pytest.skip(f"no image built in this run ({IMAGE_ENV} unset)")
    return DockerRunner(image)


@pytest.fixture
def shared_dir(tmp_path):
    """A directory the container's uid 1000 can write (pytest's are root-only)."""
    def make(name):
        d = tmp_path / name
        d.mkdir()
        d.chmod(0o777)
        return d
    return make
