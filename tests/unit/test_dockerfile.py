"""The Dockerfile: linted, and fed only from env/pins.toml."""

import re
import subprocess
import sys
from pathlib import Path

import pins

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"


def test_hadolint_passes():
    hadolint = Path(sys.executable).parent / "hadolint"
    out = subprocess.run([str(hadolint), "--config", str(REPO / "docker" / ".hadolint.yaml"), str(DOCKERFILE)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


LITERAL = re.compile(r"==\d|@sha256:|:\d+\.\d+")


def test_no_version_is_written_in_the_dockerfile():
    text = DOCKERFILE.read_text()
    assert not LITERAL.search(text), "versions belong in env/pins.toml"


def test_every_build_arg_is_passed_by_the_build_script():
    """build.sh passes `pins.py build-args VARIANT` and sets the per-build facts itself, nothing else."""
    args = set(re.findall(r"^ARG (\w+)", DOCKERFILE.read_text(), re.M))
    script = (REPO / "docker" / "build.sh").read_text()
    assert "env/pins.py build-args" in script
    the_pins = pins.load()
    from_pins = set(pins.build_args(the_pins, pins.default_variant(the_pins)))
    from_script = set(re.findall(r"\barg\[(\w+)\]=", script))
    passed = from_pins | from_script
    assert args == passed, f"declared but not passed: {args - passed}; passed but not declared: {passed - args}"
    assert from_script & from_pins == {"BASE_IMAGE"}, "build.sh overrides no pin (but the base, for the stand-in)"
    assert not LITERAL.search(script), "build.sh takes every version from env/pins.py"


def test_runtime_stage_is_non_root_and_compiler_free():
    runtime = DOCKERFILE.read_text().split("AS runtime", 1)[1]
    assert "USER 1000:1000" in runtime
    assert "apt-get" not in runtime and "gcc" not in runtime
