"""The Dockerfile: linted, and fed only from env/pins.toml."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"


def test_hadolint_passes():
    hadolint = Path(sys.executable).parent / "hadolint"
    out = subprocess.run([str(hadolint), "--config", str(REPO / "docker" / ".hadolint.yaml"), str(DOCKERFILE)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_version_is_written_in_the_dockerfile():
    text = DOCKERFILE.read_text()
    assert not re.search(r"==\d|@sha256:|:\d+\.\d+", text), "versions belong in env/pins.toml"


def test_every_build_arg_is_passed_by_the_build_script():
    args = set(re.findall(r"^ARG (\w+)", DOCKERFILE.read_text(), re.M))
    passed = set(re.findall(r"--build-arg (\w+)=", (REPO / "docker" / "build.sh").read_text()))
    assert args == passed, f"declared but not passed: {args - passed}; passed but not declared: {passed - args}"


def test_runtime_stage_is_non_root_and_compiler_free():
    runtime = DOCKERFILE.read_text().split("AS runtime", 1)[1]
    assert "USER 1000:1000" in runtime
    assert "apt-get" not in runtime and "gcc" not in runtime
