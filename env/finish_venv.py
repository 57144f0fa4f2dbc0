"""Finish an installed environment so that a rebuild gives the same files (`make repro-check`).

    PYTHONHASHSEED=0 python3 env/finish_venv.py SITE_PACKAGES [DIR ...]

- Drops uv's `uv_cache.json` from the dist-info of locally built wheels (and its RECORD line): it holds the
  wheel file's ctime, which no build can fix.
- Byte-compiles DIR (default: all of SITE_PACKAGES) hash-based, each file in a child forked from one clean
  process: pycs that depend neither on the sources' mtimes nor on what was compiled before them. Checked
  hashes: an import reads and hashes the source too (siphash, about 1 ms per MB).
- Writes no pyc for a module whose constants hold a frozenset with None or Ellipsis in it (`x in {None, 0}`):
  in Python 3.10 their hash is their address, so the frozenset's order in the pyc changes with ASLR from one
  run to the next. Those modules are compiled in memory when imported: about 20, typing_extensions among
  them, about 35 ms per `features` process in all.
- Files that are not Python 3 (Python 2 test data, templates) are counted and left without a pyc; any other
  failure names the file and fails the run.
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


# a child's exit status: what became of its file
WRITTEN, NOT_PYTHON3, LEFT, ERROR = 0, 3, 4, 1


def _compile_alone(source: Path, _compile=compile, _dumps=marshal.dumps, _clear=sys._clear_type_cache) -> int:
    """Write source's hash-based pyc (atomically: a killed build leaves none half-written), or remove it if its
    constants are unstable. marshal flags a string as shared when its refcount is above 1, and the type
    attribute cache holds names it looked up, evicting them by their addresses (ASLR): so nothing but the
    compiler and marshal (bound beforehand) runs between clearing that cache and the bytes."""
    data = source.read_bytes()
    name = str(source)
    cfile = Path(importlib.util.cache_from_source(name))
    header = importlib.util.MAGIC_NUMBER + (0b11).to_bytes(4, "little") + importlib.util.source_hash(data)
    try:
        _clear()
        code = _compile(data, name, "exec", dont_inherit=True)
        body = _dumps(code)
    except (SyntaxError, ValueError):  # ValueError: a NUL byte in the source
        return NOT_PYTHON3
    if unstable(code):
        cfile.unlink(missing_ok=True)
        return LEFT
    cfile.parent.mkdir(exist_ok=True)
    tmp = cfile.with_name(f".{cfile.name}.{os.getpid()}.tmp")
    tmp.write_bytes(header + body)
    os.replace(tmp, cfile)
    return WRITTEN


def _compile_each_in_a_fork(sources: list[Path], jobs: int) -> dict[int, int]:
    """Compile every file in a child forked from this process as it stands before the first: in one long
    process a pyc depends on what was compiled before it (the refcounts above). {exit status: files}"""
    running, outcomes = set(), {}

    def reap():
        pid, status = os.wait()
        running.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        outcomes[code] = outcomes.get(code, 0) + 1

    for source in sources:
        while len(running) >= jobs:
            reap()
        pid = os.fork()
        if pid == 0:  # the child: compile, write, leave without running any of the parent's cleanup
            code = ERROR
            try:
                code = _compile_alone(source)
            except BaseException as e:  # noqa: BLE001 - named on stderr, counted by the parent
                print(f"finish_venv: {source}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            finally:
                os._exit(code)
        running.add(pid)
    while running:
        reap()
    return outcomes


def compile_tree(root: Path, jobs: int) -> dict[int, int]:
    """{WRITTEN: n, NOT_PYTHON3: n, LEFT: n, ERROR: n} for every .py under root"""
    if not root.is_dir():
        raise NotADirectoryError(f"finish_venv: {root}: not a directory")
    outcomes = _compile_each_in_a_fork(sorted(root.rglob("*.py")), jobs)
    return {k: outcomes.get(k, 0) for k in (WRITTEN, NOT_PYTHON3, LEFT)} | {
        ERROR: sum(n for k, n in outcomes.items() if k not in (WRITTEN, NOT_PYTHON3, LEFT))}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    if os.environ.get("PYTHONHASHSEED") != "0":
        print("finish_venv: run with PYTHONHASHSEED=0: the order of frozensets of strings in a pyc follows it",
              file=sys.stderr)
        return 2
    site = Path(argv[0])
    roots = [Path(d) for d in argv[1:]] or [site]
    for d in [site, *roots]:
        if not d.is_dir():
            print(f"finish_venv: {d}: not a directory", file=sys.stderr)
            return 2
    dropped = drop_uv_cache_info(site)
    total = {WRITTEN: 0, NOT_PYTHON3: 0, LEFT: 0, ERROR: 0}
    for root in roots:
        for k, n in compile_tree(root, jobs=os.cpu_count() or 1).items():
            total[k] += n
    print(f"finish_venv: {total[WRITTEN]} pycs (hash-based, each file compiled alone); {total[LEFT]} modules left "
          f"to compile on import (a frozenset holding None or Ellipsis: its order follows ASLR); "
          f"{total[NOT_PYTHON3]} files that are not Python 3 (Python 2 test data, templates); "
          f"{dropped} uv_cache.json dropped")
    if total[ERROR]:
        print(f"finish_venv: {total[ERROR]} files could not be compiled or written (named above)", file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
