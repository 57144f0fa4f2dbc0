#!/usr/bin/env bash
# docker/base-standin.sh IMAGE_TAG WORKDIR [PYTHON_PREFIX]
#
# A local stand-in for python:3.10-slim-bookworm, for machines without a registry:
# Debian bookworm (debootstrap, minbase) + this machine's CPython 3.10 copied to /usr/local.
# The image is labelled as a stand-in; builds record which base they got.
set -euo pipefail
tag=$1 work=$(realpath -m "$2")
prefix=${3:-$(pyenv prefix 3.10 2>/dev/null || true)}
[ -x "$prefix/bin/python3.10" ] || { echo "base-standin: no CPython 3.10 found (pass its prefix)" >&2; exit 1; }
if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "base-standin: $tag exists"; exit 0
fi
command -v debootstrap >/dev/null || apt-get install -y --no-install-recommends debootstrap >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends debootstrap >/dev/null; }
rootfs="$work/rootfs"
rm -rf "$rootfs" && mkdir -p "$rootfs"
echo "base-standin: debootstrap bookworm (minbase) into $rootfs" >&2
# the shared libraries CPython links against, and what the official slim image carries
debootstrap --variant=minbase \
    --include=ca-certificates,libssl3,libsqlite3-0,libreadline8,libncursesw6,libbz2-1.0,liblzma5,libffi8,zlib1g,netbase,tzdata \
    bookworm "$rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
echo "base-standin: CPython $("$prefix/bin/python3.10" -V 2>&1) from $prefix -> /usr/local" >&2
cp -a "$prefix/." "$rootfs/usr/local/"
# console scripts carry the build prefix in their #! line
grep -rlI "^#!$prefix/bin/" "$rootfs/usr/local/bin" | xargs -r sed -i "1s|^#!$prefix/bin/|#!/usr/local/bin/|"
for link in python3 python; do ln -sf python3.10 "$rootfs/usr/local/bin/$link"; done
ln -sf pip3.10 "$rootfs/usr/local/bin/pip" 2>/dev/null || true
chroot "$rootfs" ldconfig
chroot "$rootfs" /usr/local/bin/python3.10 -c "import ssl, sqlite3, ctypes, venv; print('python ok')" >&2
rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
find "$rootfs/dev" \( -type c -o -type b \) -delete
tar -C "$rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'LABEL org.textless-stack.base-standin=true' \
    -c 'CMD ["python3"]' - "$tag" >/dev/null
rm -rf "$rootfs"
echo "base-standin: built $tag (a STAND-IN, not the pinned base)" >&2
