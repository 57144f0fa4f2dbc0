#!/usr/bin/env bash
# apptainer/toolbox.sh setup TOOLBOX
# apptainer/toolbox.sh run TOOLBOX [--bind DIR]... -- COMMAND...
#
# Where the host has `apptainer`, nothing here is needed (apptainer/apptainer.sh uses it directly).
# Otherwise: a small Debian sid root with Debian's apptainer, entered with pivot_root (apptainer
# refuses a chroot). DIRs are bound at the same paths, so commands see the same files.
set -euo pipefail
action=$1 root=$(realpath -m "$2"); shift 2

case $action in
setup)
    [ -x "$root/usr/bin/apptainer" ] && exit 0
    command -v debootstrap >/dev/null || apt-get install -y --no-install-recommends debootstrap >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends debootstrap >/dev/null; }
    echo "toolbox: debootstrap sid into $root (apptainer is not packaged for bookworm)" >&2
    rm -rf "$root" && mkdir -p "$root"
    debootstrap --variant=minbase sid "$root" http://deb.debian.org/debian >"$root.log" 2>&1 \
        || { tail -20 "$root.log" >&2; exit 1; }
    cp /etc/hosts /etc/resolv.conf "$root/etc/"
    echo "root:100000:65536" >"$root/etc/subuid"
    echo "root:100000:65536" >"$root/etc/subgid"
    unshare -m --propagation private bash -c "
        mount -t proc proc '$root/proc'
        chroot '$root' bash -c 'apt-get -o Acquire::Check-Valid-Until=false update -q >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends apptainer squashfuse fuse3 >/dev/null'
    " >>"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
    rm -rf "$root/var/cache/apt/archives/"*.deb
    echo "toolbox: $(chroot "$root" apptainer --version)" >&2
    ;;
run)
    binds=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        [ "$1" = --bind ] && { binds+=("$(realpath -m "$2")"); shift 2; continue; }
        echo "toolbox: unknown option $1" >&2; exit 2
    done
    shift
    script='set -e
        root=$1; shift; nb=$1; shift
        mount --bind "$root" "$root"
        mount -t proc proc "$root/proc"
        mount --rbind /sys "$root/sys"
        mount --rbind /dev "$root/dev"
        mount -t tmpfs tmpfs "$root/run"
        for _ in $(seq 1 "$nb"); do mkdir -p "$root$1"; mount --rbind "$1" "$root$1"; shift; done
        cd "$root" && mkdir -p .oldroot && pivot_root . .oldroot && umount -l /.oldroot
        cd /
        exec "$@"'
    exec unshare -m --propagation private bash -c "$script" toolbox "$root" "${#binds[@]}" "${binds[@]}" \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb "$@"
    ;;
*)
    echo "usage: $0 setup|run TOOLBOX ..." >&2; exit 2 ;;
esac
