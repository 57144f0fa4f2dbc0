#!/usr/bin/env bash
# apptainer/build.sh IMAGE SIF STATE_DIR
#
# Turn a built Docker image into a SIF: `docker save` -> docker-archive -> `apptainer build`
# with the rendered definition (labels from the image's own manifest); %test runs at the end.
# Uses the host's apptainer when there is one, else the Debian sid toolbox (apptainer/toolbox.sh).
set -euo pipefail
image=$1 sif=$(realpath -m "$2") state=$(realpath -m "$3")
cd "$(dirname "$0")/.."
mkdir -p "$state" "$(dirname "$sif")"
archive="$state/image.tar"
# Fail now, not ten minutes in: docker save's archive, apptainer's unpacked tree and the SIF took 1.9x the
# image's size at their peak (measured: 12 GB for a 6.3 GB image), all on this filesystem.
size=$(docker image inspect "$image" --format '{{.Size}}')
need=$((size * 2)) free=$(df --output=avail -B1 "$state" | tail -1)
if [ "$free" -lt "$need" ]; then
    gib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 2^30 }'; }
    echo "sif: not enough free disk under $state: $(gib "$free") GiB free, about $(gib "$need") GiB needed" \
         "(the image is $(gib "$size") GiB: its archive, the unpacked tree and the SIF)" >&2
    exit 1
fi
echo "sif: docker save $image" >&2
docker save "$image" -o "$archive"
docker run --rm --entrypoint cat "$image" /opt/textless-stack/manifest.json >"$state/manifest.json"
# the image's SBOM travels next to the SIF (it is inside too, at the same path)
docker run --rm --entrypoint cat "$image" /opt/textless-stack/sbom.cdx.json >"${sif%.sif}.sbom.cdx.json"
python3 apptainer/render_def.py "$state/manifest.json" "$archive" >"$state/textless-stack.def"
# %test is run by the test suite (`apptainer test`), not twice here
apptainer/apptainer.sh "$state" --bind "$(dirname "$sif")" \
    build --force --fakeroot --notest --disable-cache "$sif" "$state/textless-stack.def"
rm -f "$archive"
echo "sif: $sif ($(du -h "$sif" | cut -f1))" >&2
