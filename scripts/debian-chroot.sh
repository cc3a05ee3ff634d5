#!/usr/bin/env bash
# A Debian chroot with Debian's own nginx, nginx-dev and what the module's
# tests need, from the Debian archive the host's apt already uses.
#
#   debian-chroot.sh create SUITE DIR   debootstrap SUITE into DIR (once;
#                                       DIR/.stytch-tat-ready marks it done)
#   debian-chroot.sh run DIR CMD ...    run CMD inside, /proc /dev /dev/pts
#                                       mounted for it and unmounted after,
#                                       whatever way it ends
#   debian-chroot.sh remove DIR         unmount what is left, delete DIR
#
# MATRIX_MIRROR overrides the mirror; by default it is the first archive
# (not -security, -updates or -backports) in the host's apt sources.
set -u

log() { printf '== %s\n' "$*"; }
die() { printf 'debian-chroot.sh: %s\n' "$*" >&2; exit 1; }

# packages inside: the build (nginx-dev's conf_flags needs dpkg-dev on sid),
# the unit tests, the Debian package (build-essential), the harness (perl,
# prove), the emulator (nodejs) and Prometheus (t/060 to t/062)
PACKAGES="nginx nginx-dev dpkg-dev build-essential gcc make libc6-dev libjansson-dev
    libssl-dev libpcre2-dev zlib1g-dev libcmocka-dev perl libtest-base-perl
    curl openssl nodejs procps prometheus"

host_mirror() {
    local f
    if [ -n "${MATRIX_MIRROR:-}" ]; then
        echo "$MATRIX_MIRROR"
        return
    fi
    # deb822 stanzas: the URIs of one whose suites include a plain release
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && uri != "" && plain) {
                    print uri; found = 1; exit
                }
                types = ""; uri = ""; plain = 0
            }
            /^[ \t]*$/        { flush(); next }
            /^Types:/         { types = $0; sub(/^Types:[ \t]*/, "", types) }
            /^URIs:/          { uri = $2 }
            /^Suites:/        { for (i = 2; i <= NF; i++)
                                    if ($i !~ /-(security|updates|backports)$/)
                                        plain = 1 }
            END               { if (!found) flush() }
        ' "$f" | head -1
    done | head -1 | grep . && return
    # one-line format
    awk '$1 == "deb" && $3 !~ /-(security|updates|backports)$/ {
             for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit }
         }' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | head -1 | grep . && return
    return 1
}

mounted() { grep -qs " $1 " /proc/mounts; }

umount_all() {
    local dir=$1 m
    for m in dev/pts dev proc; do
        if mounted "$dir/$m"; then
            umount "$dir/$m" 2>/dev/null || umount -l "$dir/$m"
        fi
    done
}

mount_all() {
    local dir=$1
    mounted "$dir/proc" || mount -t proc proc "$dir/proc" || return 1
    mounted "$dir/dev" || mount --bind /dev "$dir/dev" || return 1
    mounted "$dir/dev/pts" || mount --bind /dev/pts "$dir/dev/pts" || return 1
}

in_chroot() {
    local dir=$1
    shift
    chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
        CI="${CI:-}" "$@"
}

create() {
    local suite=$1 dir=$2 mirror t0
    [ -f "$dir/.stytch-tat-ready" ] && return 0
    command -v debootstrap >/dev/null \
        || sh "$(dirname "$0")/apt-ensure.sh" debootstrap || return 1
    mirror=$(host_mirror) || die "no Debian mirror in the host's apt sources"
    t0=$(date +%s)
    # a half-made chroot (an interrupted run) is made anew
    umount_all "$dir"
    rm -rf --one-file-system "$dir"
    mkdir -p "$dir"
    log "debootstrap $suite into $dir"
    debootstrap --variant=minbase "$suite" "$dir" "$mirror" \
        > "$dir.debootstrap.log" 2>&1 \
        || { tail -20 "$dir.debootstrap.log"; return 1; }

    # minbase has no /etc/hosts: the tests reach the emulator as localhost
    [ -f "$dir/etc/hosts" ] \
        || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
            > "$dir/etc/hosts"

    # no daemon may start inside (nginx's postinst would start one)
    printf '#!/bin/sh\nexit 101\n' > "$dir/usr/sbin/policy-rc.d"
    chmod 755 "$dir/usr/sbin/policy-rc.d"

    # the host's apt may take an archive snapshot whose Release has
    # expired: the chroot reads the same archive, with the same settings
    apt-config dump | grep -E '^Acquire::Check-(Valid-Until|Date) ' \
        > "$dir/etc/apt/apt.conf.d/99host-archive"

    chroot_dir=$dir
    trap 'umount_all "$chroot_dir"' EXIT
    mount_all "$dir" || return 1
    log "installing nginx, nginx-dev and the test tools in $suite"
    # shellcheck disable=SC2086
    in_chroot "$dir" sh -c "apt-get update -qq && apt-get install -y -qq \
        --no-install-recommends $(echo $PACKAGES)" > "$dir.apt.log" 2>&1 \
        || { tail -20 "$dir.apt.log"; umount_all "$dir"; return 1; }
    in_chroot "$dir" apt-get clean
    umount_all "$dir"
    trap - EXIT
    touch "$dir/.stytch-tat-ready"
    log "$suite ready in $(( $(date +%s) - t0 ))s"
}

run() {
    local dir=$1 rc
    shift
    [ -f "$dir/.stytch-tat-ready" ] || die "$dir: no chroot (create it first)"
    chroot_dir=$dir
    trap 'umount_all "$chroot_dir"' EXIT
    trap 'umount_all "$chroot_dir"; exit 130' INT TERM
    mount_all "$dir" || { umount_all "$dir"; return 1; }
    in_chroot "$dir" "$@"
    rc=$?
    umount_all "$dir"
    trap - EXIT INT TERM
    return $rc
}

remove() {
    local dir=$1
    [ -e "$dir" ] || return 0
    umount_all "$dir"
    # never through a mount that is still there (the host's /dev, say)
    rm -rf --one-file-system "$dir" "$dir.debootstrap.log" "$dir.apt.log"
}

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount)"

case ${1:-} in
create) [ $# -eq 3 ] || die "usage: $0 create SUITE DIR"; create "$2" "$3" ;;
run)    [ $# -ge 3 ] || die "usage: $0 run DIR CMD ..."; d=$2; shift 2; run "$d" "$@" ;;
remove) [ $# -eq 2 ] || die "usage: $0 remove DIR"; remove "$2" ;;
mirror) host_mirror ;;
*)      die "usage: $0 create SUITE DIR | run DIR CMD ... | remove DIR | mirror" ;;
esac
