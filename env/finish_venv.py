"""Finish an installed environment so that a rebuild gives the same files (`make repro-check`).

    PYTHONHASHSEED=0 python3 env/finish_venv.py SITE_PACKAGES [DIR ...]

- Drops uv's `uv_cache.json` from the dist-info of locally built wheels (and its RECORD line): it holds the
  wheel file's ctime, which no build can fix.
- Byte-compiles DIR (default: all of SITE_PACKAGES) hash-based, each file in a child forked from one clean
  process: pycs that depend neither on the sources' mtimes nor on what was compiled before them.
- Removes the pyc of a module whose constants hold a frozenset with None or Ellipsis in it (`x in {None, 0}`):
  in Python 3.10 their hash is their address, so the frozenset's order in the pyc changes with ASLR from one
  run to the next. Those modules are compiled in memory when imported (a few, none on the hot path).
Needs PYTHONHASHSEED=0 (str and bytes hashes order the other frozensets).
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import sys
from pathlib import Path

# objects whose hash is their id() in Python 3.10 (NaN's too, since 3.10)
ADDRESS_HASHED = (type(None), type(Ellipsis), type(NotImplemented))


def _address_hashed(value) -> bool:
    if isinstance(value, ADDRESS_HASHED) or (isinstance(value, (float, complex)) and value != value):
        return True
    return isinstance(value, (tuple, frozenset)) and any(_address_hashed(v) for v in value)


def unstable(value) -> bool:
    """Does this constant (a code object, a tuple, ...) hold a frozenset whose order depends on ASLR?"""
    if isinstance(value, frozenset):
        return (len(value) > 1 and any(_address_hashed(v) for v in value)) or any(unstable(v) for v in value)
    if isinstance(value, tuple):
        return any(unstable(v) for v in value)
    if hasattr(value, "co_consts"):
        return any(unstable(c) for c in value.co_consts)
    return False


def drop_uv_cache_info(site: Path) -> int:
    dropped = 0
    for info in sorted(site.glob("*.dist-info/uv_cache.json")):
        record = info.parent / "RECORD"
        if record.is_file():
            lines = record.read_text().splitlines(keepends=True)
            record.write_text("".join(line for line in lines if not line.startswith(f"{info.parent.name}/uv_cache.json,")))
        info.unlink()
        dropped += 1
    return dropped


def _compile_alone(source: Path, _compile=compile, _dumps=marshal.dumps, _clear=sys._clear_type_cache) -> None:
    """Write source's hash-based pyc. marshal flags a string as shared when its refcount is above 1, and the
    type attribute cache holds names it looked up, evicting them by their addresses (ASLR): so nothing but
    the compiler and marshal (bound beforehand) runs between clearing that cache and the bytes."""
    data = source.read_bytes()
    cfile = Path(importlib.util.cache_from_source(str(source)))
    header = importlib.util.MAGIC_NUMBER + (0b11).to_bytes(4, "little") + importlib.util.source_hash(data)
    _clear()
    body = _dumps(_compile(data, str(source), "exec", dont_inherit=True))
    cfile.parent.mkdir(exist_ok=True)
    cfile.write_bytes(header + body)


def _compile_each_in_a_fork(sources: list[Path], jobs: int) -> int:
    """Compile every file in a child forked from this process as it stands before the first: in one long
    process a pyc depends on what was compiled before it (the refcounts above)."""
    running, failed = set(), 0

    def reap():
        nonlocal failed
        pid, status = os.wait()
        running.discard(pid)
        failed += status != 0

    for source in sources:
        while len(running) >= jobs:
            reap()
        pid = os.fork()
        if pid == 0:  # the child: compile, write, leave without running any of the parent's cleanup
            code = 1
            try:
                _compile_alone(source)
                code = 0
            finally:
                os._exit(code)
        running.add(pid)
    while running:
        reap()
    return failed


def compile_tree(root: Path, jobs: int) -> tuple[int, list[Path], int]:
    """(pycs written, modules left without one, files that do not compile, such as Python 2 test data)"""
    sources = sorted(root.rglob("*.py"))
    failed = _compile_each_in_a_fork(sources, jobs)
    written, left = 0, []
    for pyc in sorted(root.rglob("__pycache__/*.pyc")):
        if unstable(marshal.loads(pyc.read_bytes()[16:])):
            left.append(pyc)
            pyc.unlink()
        else:
            written += 1
    return written, left, failed


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    if os.environ.get("PYTHONHASHSEED") != "0":
        print("finish_venv: run with PYTHONHASHSEED=0: the order of frozensets of strings in a pyc follows it",
              file=sys.stderr)
        return 2
    site = Path(argv[0])
    dropped = drop_uv_cache_info(site)
    written, left, failed = 0, [], 0
    for root in [Path(d) for d in argv[1:]] or [site]:
        w, l, f = compile_tree(root, jobs=os.cpu_count() or 1)
        written, left, failed = written + w, left + l, failed + f
    print(f"finish_venv: {written} pycs (hash-based, each file compiled alone); {len(left)} modules left to compile "
          f"on import (a frozenset holding None or Ellipsis: its order follows ASLR); {failed} files that do not "
          f"compile (Python 2 test data and templates, as before); {dropped} uv_cache.json dropped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
