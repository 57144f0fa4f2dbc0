"""The local Python 3.10 stack: what make venv built, and that it says where it came from."""

import importlib
import importlib.metadata as md
import subprocess
import sys
from pathlib import Path

import pins
import pytest


def test_python_is_the_pinned_line():
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == pins.load()["python"]["version"]


def test_installed_versions_equal_the_pins():
    p = pins.load()
    wanted = p["runtime"] | pins.variant_packages(p, pins.default_variant(p)) | p["dev"]
    wrong = {name: (v, md.version(name)) for name, v in wanted.items() if md.version(name) != v}
    assert not wrong


def test_dependency_tree_is_consistent(build_dir):
    uv = build_dir / "tools" / "bin" / "uv"
    out = subprocess.run([str(uv), "pip", "check", "--python", sys.executable], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_fairseq_c_extensions_import():
    for mod in ("fairseq.data.data_utils_fast", "fairseq.data.token_block_utils_fast", "fairseq.libbleu"):
        importlib.import_module(mod)


def test_record_names_sources_and_stand_ins(env_record):
    fairseq = env_record["sources"]["fairseq"]
    assert fairseq["pinned_commit"] == pins.load()["sources"]["fairseq"]["commit"]
    if fairseq["standin"]:
        assert "fairseq" in env_record["standins_used"] and fairseq["package"] == "fairseq==0.12.2"
        assert fairseq["sha256"] == pins.load()["sources"]["fairseq"]["standin"]["sha256"]
        assert md.version("fairseq") == "0.12.2"
    else:
        assert fairseq["commit_verified"] or fairseq["kind"] == "local-dir"
        assert md.version("fairseq").startswith("1.0.0a0")
    assert env_record["patches"]["fairseq"]["transforms_applied"] > 0
    assert env_record["patches"]["hydra"]["flavour"] == "1.0.7"


def test_installed_fairseq_is_the_patched_one():
    import fairseq.dataclass.configs as configs

    text = Path(configs.__file__).read_text()
    assert "field(default_factory=CommonConfig)" in text and "CommonConfig = CommonConfig()" not in text


def test_textless_imports_without_writing_home(textlesslib_installed, tmp_path):
    env = {"HOME": str(tmp_path / "no-such-home"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", "import textless, textless.checkpoint_manager"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not (tmp_path / "no-such-home").exists()
