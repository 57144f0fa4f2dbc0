"""env/finish_venv.py: the pycs and dist-info a rebuild must reproduce byte for byte (`make repro-check`)."""

import importlib.util
import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

import finish_venv

REPO = Path(__file__).resolve().parents[2]
PY310 = pytest.mark.skipif(sys.version_info[:2] != (3, 10),
                           reason="the image's Python is 3.10: marshal's refcount rule and None's address hash are "
                                  "what this guards there")


def finish(*args, seed="0"):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    if seed is not None:
        env["PYTHONHASHSEED"] = seed
    return subprocess.run([sys.executable, str(REPO / "env/finish_venv.py"), *map(str, args)], env=env,
                          capture_output=True, text=True)


def pyc_of(source: Path) -> Path:
    return Path(importlib.util.cache_from_source(str(source)))


def test_pycs_are_hash_based_and_python_uses_them(tmp_path):
    site = tmp_path / "site-packages"
    (site / "pkg").mkdir(parents=True)
    source = site / "pkg" / "mod.py"
    source.write_text("VALUE = 'from source'\n")
    r = finish(site)
    assert r.returncode == 0, r.stderr
    data = pyc_of(source).read_bytes()
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[4:8], "little") == 0b11, "checked-hash: no mtime in the pyc"
    assert data[8:16] == importlib.util.source_hash(source.read_bytes())
    # a pyc with a valid header is what the import takes: swap its code for another module's and import
    other = marshal.dumps(compile("VALUE = 'from the pyc'\n", str(source), "exec"))
    pyc_of(source).write_bytes(data[:16] + other)
    r = subprocess.run([sys.executable, "-B", "-c", "import pkg.mod; print(pkg.mod.VALUE)"], cwd=site,
                       capture_output=True, text=True)
    assert r.stdout.strip() == "from the pyc", r.stderr


def test_two_runs_write_the_same_bytes(tmp_path):
    site = tmp_path / "site-packages"
    pkg = site / "pkg"
    pkg.mkdir(parents=True)
    for name in ("json", "email"):  # real modules: many names, sets of strings, nested code
        for f in (Path(os.__file__).parent / name).glob("*.py"):
            (pkg / f"{name}_{f.name}").write_bytes(f.read_bytes())
    sums = []
    for _ in range(2):
        for p in pkg.rglob("*.pyc"):
            p.unlink()
        assert finish(site).returncode == 0
        sums.append({p.name: p.read_bytes() for p in pkg.rglob("*.pyc")})
    assert len(sums[0]) > 20 and sums[0] == sums[1]


@PY310
def test_a_pyc_does_not_depend_on_what_the_process_looked_up_before(tmp_path):
    """marshal flags a string as shared when its refcount is above 1, and the type attribute cache keeps a
    reference to every name looked up until another lookup with a colliding address evicts it: how a single
    compileall process wrote different bytes for one module from one build to the next."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    zz_rare_local = 1\n    return zz_rare_local\n")
    finish_venv._compile_alone(source)
    clean = pyc_of(source).read_bytes()
    data = source.read_bytes()
    name = sys.intern("".join(["zz_rare", "_local"]))
    getattr(int, name, None)  # the type cache now holds the name
    del name
    assert marshal.dumps(compile(data, str(source), "exec", dont_inherit=True)) != clean[16:], \
        "a plain compile in this process flags the cached name as shared"
    finish_venv._compile_alone(source)
    assert pyc_of(source).read_bytes() == clean


def test_a_frozenset_holding_none_leaves_its_module_without_a_pyc(tmp_path):
    """In Python 3.10 hash(None) is None's address: such a frozenset's order in the pyc follows ASLR."""
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "unstable.py").write_text("def f(x):\n    return x in {None, 'a', 'b'}\n")
    (site / "stable.py").write_text("def f(x):\n    return x in {'a', 'b', 'c'}\n")
    r = finish(site)
    assert r.returncode == 0, r.stderr
    assert not pyc_of(site / "unstable.py").exists() and pyc_of(site / "stable.py").exists()
    assert "1 modules left to compile on import" in r.stdout


def test_what_counts_as_unstable():
    unstable = finish_venv.unstable
    assert unstable(compile("x in {None, 1}", "s", "eval"))
    assert unstable(compile("def f():\n    def g(x):\n        return x in {(1, None), (2, 3)}\n", "s", "exec"))
    assert unstable(frozenset({float("nan"), 1.0}))
    assert not unstable(compile("x in {'a', 'b', 1, 2.5, b'c'}", "s", "eval"))
    assert not unstable(frozenset({None})), "one element has one order"


def test_uv_cache_info_is_dropped_with_its_record_line(tmp_path):
    site = tmp_path / "site-packages"
    info = site / "fairseq-0.12.2.dist-info"
    info.mkdir(parents=True)
    (info / "uv_cache.json").write_text('{"timestamp": {"secs_since_epoch": 1796290827}}')
    (info / "RECORD").write_text("fairseq/__init__.py,sha256=abc,10\n"
                                 "fairseq-0.12.2.dist-info/uv_cache.json,sha256=def,40\n"
                                 "fairseq-0.12.2.dist-info/RECORD,,\n")
    r = finish(site)
    assert r.returncode == 0, r.stderr
    assert not (info / "uv_cache.json").exists()
    assert (info / "RECORD").read_text() == "fairseq/__init__.py,sha256=abc,10\nfairseq-0.12.2.dist-info/RECORD,,\n"
    assert "1 uv_cache.json dropped" in r.stdout


def test_without_a_fixed_hash_seed_it_refuses(tmp_path):
    r = finish(tmp_path, seed=None)
    assert r.returncode == 2 and "PYTHONHASHSEED=0" in r.stderr


def test_python2_files_are_counted_and_any_other_failure_names_its_file_and_fails(tmp_path):
    site = tmp_path / "site-packages"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "py2.py").write_text("print 'hello'\n")
    (site / "pkg" / "ok.py").write_text("X = 1\n")
    # a foreign pyc with no source and bytes marshal cannot read is none of our business
    (site / "pkg" / "__pycache__").mkdir()
    (site / "pkg" / "__pycache__" / "gone.cpython-310.pyc").write_bytes(b"not a pyc")
    r = finish(site)
    assert r.returncode == 0, r.stderr
    assert "1 files that are not Python 3" in r.stdout and pyc_of(site / "pkg" / "ok.py").exists()
    assert not pyc_of(site / "pkg" / "py2.py").exists()
    assert not list((site / "pkg" / "__pycache__").glob("*.tmp")), "no temporary file left"

    (site / "bad").mkdir()
    (site / "bad" / "m.py").write_text("Y = 2\n")
    (site / "bad" / "__pycache__").write_text("a file where the pyc directory goes")
    r = finish(site)
    assert r.returncode == 1
    assert f"finish_venv: {site / 'bad' / 'm.py'}: FileExistsError" in r.stderr
    assert "1 files could not be compiled or written" in r.stderr


def test_a_directory_that_is_not_there_is_refused_by_name(tmp_path):
    r = finish(tmp_path, tmp_path / "nope")
    assert r.returncode == 2 and f"finish_venv: {tmp_path / 'nope'}: not a directory" in r.stderr
