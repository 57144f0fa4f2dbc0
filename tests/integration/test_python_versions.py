"""Patched fairseq and hydra import and build configs on Python 3.10, 3.11 and 3.12;
unpatched ones do not on 3.11+ (so these tests can fail)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CONVERT = """
from fairseq import options
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
parser = options.get_training_parser()
args = options.parse_args_and_arch(parser, ["data", "--task", "audio_pretraining", "--arch", "wav2vec2",
                                            "--criterion", "wav2vec", "--optimizer", "adam", "--lr", "0.0005"])
cfg = convert_namespace_to_omegaconf(args)
assert cfg.task._name == "audio_pretraining" and cfg.model._name == "wav2vec2", cfg
assert list(cfg.optimization.lr) == [0.0005] and cfg.common.seed == 1
print("CONVERTED", type(cfg).__name__)
"""


def python_for(version, build_dir):
    if version == "3.10":
        return sys.executable, {}
    py = build_dir / f"py{version}" / "bin" / "python"
    if not py.exists():
        pytest.skip(f"Python {version} is not installed on this machine")
    # the patched fairseq source tree (its C extensions are not needed for these imports)
    return str(py), {"PYTHONPATH": os.pathsep.join([str(build_dir / "src" / "fairseq"), str(REPO / "entrypoints")])}


def run(python, env_extra, code):
    env = {**os.environ, **env_extra, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("version", ["3.10", "3.11", "3.12"])
def test_patched_fairseq_converts_namespace(version, build_dir):
    python, env = python_for(version, build_dir)
    out = run(python, env, f"import sys; assert sys.version.startswith('{version}'), sys.version\n" + CONVERT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "CONVERTED DictConfig" in out.stdout


@pytest.mark.parametrize("version", ["3.11", "3.12"])
def test_unpatched_fairseq_fails(version, build_dir):
    python, env = python_for(version, build_dir)
    env["PYTHONPATH"] = str(build_dir / "src" / "fairseq-pristine")
    out = run(python, env, "import fairseq")
    assert out.returncode != 0
    assert "mutable default" in out.stderr and "use default_factory" in out.stderr


@pytest.mark.parametrize("version", ["3.11", "3.12"])
def test_unpatched_hydra_fails(version, build_dir):
    python, env = python_for(version, build_dir)
    out = run(python, {"PYTHONPATH": str(build_dir / f"py{version}" / "pristine")}, "import hydra.conf")
    assert out.returncode != 0 and "mutable default" in out.stderr
