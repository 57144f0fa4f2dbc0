#!/usr/bin/env bash
# docker/build.sh VARIANT TAG STATE_DIR SRC_DIR
#
# Build one image variant with a real Docker engine (docker/engine.sh must have started one;
# DOCKER_HOST set). Build arguments: the pinned ones from `env/pins.py build-args VARIANT`, plus
# the facts of this build (base actually used, revision, models to bake). Base: the pinned digest
# when it can be pulled, else the local stand-in (docker/base-standin.sh), recorded in the image.
# Upstream sources come from SRC_DIR (`make sources`: fetched and verified by env/sources.py).
# Extra CA bundle: $CA_BUNDLE, passed as a build secret.
set -euo pipefail
variant=$1 tag=$2 state=$(realpath -m "$3") src=$(realpath "$4")
cd "$(dirname "$0")/.."

# The build context holds exactly what the image is made of: our env/ and entrypoints/, and the
# pristine upstream trees with their source records.
context="$state/context"
rm -rf "$context" && mkdir -p "$context/src"
cp -a env entrypoints "$context/"
for project in fairseq textlesslib; do
    if [ -s "$src/$project-source.json" ] && [ -d "$src/$project-pristine" ]; then
        cp -a "$src/$project-pristine" "$src/$project-source.json" "$context/src/"
    fi
done
printf '%s\n' '**/__pycache__' '**/*.egg-info' '**/build' >"$context/.dockerignore"

declare -A arg=()
pinned=$(python3 env/pins.py build-args "$variant")
while IFS='=' read -r name value; do arg[$name]=$value; done <<<"$pinned"

arg[BASE_IS_STANDIN]=false
base=${arg[BASE_IMAGE]}
if ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull --quiet "$base" >/dev/null 2>&1; then
    arg[BASE_IMAGE]=textless-stack/base-standin:python3.10-slim-bookworm
    arg[BASE_IS_STANDIN]=true
    echo "build: the pinned base cannot be pulled here: USING THE LOCAL STAND-IN ${arg[BASE_IMAGE]}" >&2
    docker/base-standin.sh "${arg[BASE_IMAGE]}" "$state/standin" >&2
fi

# BuildKit: the engine's own client where the PATH one has no buildx (Debian docker.io 20.10)
client=docker
if ! docker buildx version >/dev/null 2>&1 && [ -x /usr/bin/docker ]; then client=/usr/bin/docker; fi

secret=()
if [ -n "${CA_BUNDLE:-}" ] && [ -s "$CA_BUNDLE" ]; then secret=(--secret "id=ca_bundle,src=$CA_BUNDLE"); fi

arg[REVISION]=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# the commit's time, for what records a time (the SBOM): a rebuild of one commit writes the same
arg[SOURCE_DATE_EPOCH]=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
$(git diff --quiet HEAD 2>/dev/null) || arg[REVISION]="${arg[REVISION]}-dirty"
arg[BAKE_MODELS]=${BAKE_MODELS:-}

build_args=()
for name in "${!arg[@]}"; do build_args+=(--build-arg "$name=${arg[$name]}"); done
# NO_CACHE=1: build every step again (`make repro-check`)
DOCKER_BUILDKIT=1 $client build ${NO_CACHE:+--no-cache} \
    --file docker/Dockerfile --target runtime --tag "$tag" "${secret[@]}" "${build_args[@]}" "$context"
# the id file changes (mtime) only when the image does: the SIF target depends on it
id=$(docker image inspect "$tag" --format '{{.Id}}')
[ "$(cat "$state/image-$variant.id" 2>/dev/null)" = "$id" ] || echo "$id" >"$state/image-$variant.id"
echo "build: $tag ($(docker image inspect "$tag" --format '{{.Size}}' | awk '{printf "%.2f GB", $1/1e9}'))" >&2
