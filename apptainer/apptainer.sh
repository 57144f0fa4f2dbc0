#!/usr/bin/env bash
# apptainer/apptainer.sh STATE_DIR [--no-network] [--bind DIR]... APPTAINER-ARGS...
#
# `apptainer` itself where the host has it; otherwise the same command inside the toolbox
# (set up on first use under STATE_DIR/toolbox), with STATE_DIR and every --bind DIR visible at the
# same path. --no-network runs it in an empty network namespace (compute-node conditions).
set -euo pipefail
state=$(realpath -m "$1"); shift
here=$(cd "$(dirname "$0")" && pwd)
binds=("$state") netns=()
while [ $# -gt 0 ]; do
    case $1 in
    --no-network) netns=(unshare -n); shift ;;
    --bind) binds+=("$2"); shift 2 ;;
    *) break ;;
    esac
done
if command -v apptainer >/dev/null; then
    exec "${netns[@]}" apptainer "$@"
fi
toolbox="$state/toolbox"
"$here/toolbox.sh" setup "$toolbox"
args=()
for b in "${binds[@]}"; do args+=(--bind "$b"); done
exec "${netns[@]}" "$here/toolbox.sh" run "$toolbox" "${args[@]}" -- apptainer "$@"
