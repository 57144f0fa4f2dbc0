#!/usr/bin/env bash
# env/repro-check.sh VARIANT IMAGE SIF WORK_DIR SRC_DIR APPTAINER_STATE     (`make repro-check`)
#
# Is a rebuild of this commit the same build? IMAGE and SIF are the ones `make sif` built. This
# drops the whole build cache (uv's cache mounts included), builds the image again with --no-cache
# and a SIF from it, and compares the two images, then the two SIFs, file by file (env/repro.py):
# the Python environment and our files must be identical; what else differs is listed. Then it says
# what differs at the level of image layers and SIF files. Exit 1 if anything in scope differs.
# The rebuild and its SIF are removed afterwards; the inventories and reports stay in WORK_DIR.
set -euo pipefail
variant=$1 image=$2 sif=$(realpath "$3") work=$(realpath -m "$4") src=$5 apptainer_state=$6
cd "$(dirname "$0")/.."
rebuild="$image-rebuild"
sif_b="$work/$(basename "${sif%.sif}")-rebuild.sif"
mkdir -p "$work"
# the rebuild and its SIF (6 GB and 3 GB) go, however this ends: a failure, an interrupt
cleanup() { docker image rm "$rebuild" >/dev/null 2>&1 || true; rm -f "$sif_b" "${sif_b%.sif}.sbom.cdx.json"; }
trap cleanup EXIT

inventory_image() {  # as root: every file readable, nothing of the user's environment
    docker run --rm -i --network none --user 0:0 --entrypoint /opt/venv/bin/python "$1" - inventory \
        <env/repro.py >"$2"
}
inventory_sif() {
    apptainer/apptainer.sh "$apptainer_state" --bind "$(dirname "$1")" \
        exec --userns --containall --cleanenv "$1" /opt/venv/bin/python - inventory <env/repro.py >"$2"
}

echo "repro-check: inventory of $image" >&2
inventory_image "$image" "$work/image-a.json"
# --no-cache skips the layer cache; the cache mounts (uv's) it would still use are dropped here. Only those:
# on a shared engine other projects keep their layer cache, though not their cache mounts.
echo "repro-check: dropping the build cache mounts (uv's), then rebuilding with --no-cache" >&2
docker builder prune --all --force --filter type=exec.cachemount >/dev/null
start=$(date +%s)
NO_CACHE=1 docker/build.sh "$variant" "$rebuild" "$work/docker" "$src"
echo "repro-check: rebuilt in $(($(date +%s) - start)) s" >&2
inventory_image "$rebuild" "$work/image-b.json"

rc=0
python3 env/repro.py compare "$work/image-a.json" "$work/image-b.json" --json "$work/image-report.json" \
    --labels "image $image" "image $rebuild (no build cache)" || rc=$?

echo "image layers (content and metadata, as pushed):"
docker image inspect "$image" --format '{{json .RootFS.Layers}}' >"$work/layers-a.json"
docker image inspect "$rebuild" --format '{{json .RootFS.Layers}}' >"$work/layers-b.json"
python3 - "$work/layers-a.json" "$work/layers-b.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
same = sum(1 for x, y in zip(a, b) if x == y)
print(f"  {same} of {max(len(a), len(b))} layers identical (the base's); the others differ by their files' mtimes "
      "(each build's time), which the comparison above ignores")
EOF

echo "repro-check: building a SIF from the rebuild" >&2
apptainer/build.sh "$rebuild" "$sif_b" "$apptainer_state"
inventory_sif "$sif" "$work/sif-a.json"
inventory_sif "$sif_b" "$work/sif-b.json"
python3 env/repro.py compare "$work/sif-a.json" "$work/sif-b.json" --json "$work/sif-report.json" \
    --labels "SIF $(basename "$sif")" "SIF $(basename "$sif_b")" || rc=$?
echo "SIF files:"
for f in "$sif" "$sif_b"; do echo "  $(sha256sum "$f" | cut -c1-16)  $(basename "$f")"; done
apptainer/apptainer.sh "$apptainer_state" --bind "$(dirname "$sif")" --bind "$work" \
    inspect --json "$sif" >"$work/sif-a.labels.json"
apptainer/apptainer.sh "$apptainer_state" --bind "$work" inspect --json "$sif_b" >"$work/sif-b.labels.json"
python3 - "$work/sif-a.labels.json" "$work/sif-b.labels.json" <<'EOF'
import json, sys
a, b = (json.load(open(p))["data"]["attributes"]["labels"] for p in sys.argv[1:3])
keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
print(f"  labels that differ: {', '.join(f'{k} ({a.get(k)} / {b.get(k)})' for k in keys) or 'none'};"
      " the SIF header also carries a creation time and a random id of its own")
EOF

echo "repro-check: $([ $rc -eq 0 ] && echo PASS || echo FAIL) (reports in $work)"
exit $rc
