#!/usr/bin/env bash
# env/build-wheel.sh PROJECT WORKDIR [WHEELDIR]
# Fetch one upstream source (sources.py) into WORKDIR/PROJECT-pristine, patch a copy of it into
# WORKDIR/PROJECT (patcher), and, given WHEELDIR, build its wheel there with uv.
#   `make sources`: fetch and patch only (what the image build takes: it patches and builds inside);
#   `make venv` and the Docker build stage: the wheel too. Exit 3: the source is unavailable.
# Environment: UV (uv binary), PYTHON (interpreter to build for), TOOL_PYTHON (runs our stdlib tools),
# SKIP_FETCH=1 (WORKDIR/PROJECT-pristine and its record exist already: `make wheels`, the Docker build stage).
set -euo pipefail
project=$1 work=$2 wheels=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
UV=${UV:-uv}
PYTHON=${PYTHON:-python3}
TOOL_PYTHON=${TOOL_PYTHON:-$PYTHON}
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$work"

if [ "${SKIP_FETCH:-0}" != 1 ]; then
    rc=0
    "$TOOL_PYTHON" "$here/sources.py" "$project" "$work/$project-pristine" --uv "$UV" >"$work/$project-source.json" || rc=$?
    [ "$rc" -eq 0 ] || exit "$rc"
elif [ ! -s "$work/$project-source.json" ] || [ -z "$(ls -A "$work/$project-pristine" 2>/dev/null)" ]; then
    exit 3
fi

rm -rf "$work/$project"
cp -a "$work/$project-pristine" "$work/$project"
"$TOOL_PYTHON" -m patcher "$project" "$work/$project" --report "$work/$project-patch-report.json"
[ -n "$wheels" ] || exit 0

# numpy/cython for the C extensions come from pins.toml [build]: an extension compiled
# against another numpy ABI would fail to import at run time.
mkdir -p "$wheels"
"$TOOL_PYTHON" "$here/pins.py" build-constraints >"$work/build-constraints.txt"
case $project in textlesslib) dist=textless ;; *) dist=$project ;; esac  # wheel names
rm -f "$wheels/$dist"-*.whl
# No debug info in C extensions: it would carry the random path of uv's temporary build environment
# (numpy's headers), and every build's .so would differ (`make repro-check`). Code generation is unchanged.
CFLAGS="${CFLAGS:+$CFLAGS }-g0" "$UV" build --quiet --wheel --python "$PYTHON" --build-constraint "$work/build-constraints.txt" \
    --out-dir "$wheels" "$work/$project"
