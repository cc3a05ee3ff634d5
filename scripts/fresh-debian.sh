#!/usr/bin/env bash
# scripts/fresh-debian.sh: the README's two commands on a fresh Debian 12, the
# way a new user runs them.  In a debootstrap --variant=minbase bookworm root
# with only make, git and ca-certificates added, it clones this repository's
# committed HEAD and runs
#
#   make test                    (all of it: unit, emulator fidelity, prove)
#   make run                     (in a second fresh clone), then the README's
#                                curl, checks that the demo upstream got the
#                                session headers, and stops it
#
# Nothing of the host's toolchain is visible inside (its Node.js in
# particular): whatever the two commands need, they must install themselves.
# The root is a Debian 12 as its installer leaves it where it matters here:
#   - /etc/hosts as the installer writes it (not the host's), so localhost
#     is ::1 first, as on every stock Debian 12:
#         127.0.0.1 localhost, 127.0.1.1 HOSTNAME,
#         ::1 localhost ip6-localhost ip6-loopback,
#         ff02::1 ip6-allnodes, ff02::2 ip6-allrouters
#     (FRESH_HOSTS=FILE puts FILE there instead);
#   - the commands run with the environment of a fresh root shell:
#     env -i PATH HOME=/root LANG=C.UTF-8, plus only the variables below.
# What the root takes from the host, so that it reaches the package
# registries the way the host does, and nothing more:
#   - the host's Debian sources for bookworm and its -updates/-security
#     suites, read with apt itself (other repositories of the host, such as
#     a third-party Node.js, are left out), and its Acquire:: settings
#     (proxies, timeouts, date checks);
#   - the extra CA certificates in /usr/local/share/ca-certificates, the file
#     named by NODE_EXTRA_CA_CERTS (copied in, the variable set to the copy),
#     the npm configuration files (~/.npmrc, /etc/npmrc,
#     /usr/local/etc/npmrc) and the proxy and npm_config_* variables;
#   - /etc/resolv.conf (and /etc/hostname, which debootstrap copies).
# In the root, /usr/sbin/policy-rc.d keeps packages from starting daemons
# (as in any chroot: no init system runs there).
#
# Needs root; installs debootstrap if missing.  /proc, /dev and /dev/pts are
# mounted into the root and unmounted on every way out; the root is removed
# at the end (FRESH_KEEP=1 keeps it, for a look inside).  Prints how long
# each step took and which Node.js the commands used.  Exits non-zero, with
# a line starting "fresh-debian: FAILED", when anything fails.
#
# Environment (optional): FRESH_DIR (where to make the root; default a new
# directory under /var/tmp), FRESH_KEEP=1, FRESH_RUN_TIMEOUT (seconds for
# `make run` to get ready, default 600), FRESH_HOSTS (a file to use as the
# root's /etc/hosts instead of the installer's, e.g. with ::1 listed first).

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE=bookworm
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
CLONE=/root/ngx_http_stytch_tat_module          # what `git clone URL` makes
RUN_CLONE=/root/run/ngx_http_stytch_tat_module
RUN_TIMEOUT=${FRESH_RUN_TIMEOUT:-600}

say() { printf 'fresh-debian: %s\n' "$*"; }
die() { printf 'fresh-debian: FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount)"
[[ $RUN_TIMEOUT =~ ^[0-9]+$ ]] || die "FRESH_RUN_TIMEOUT must be a number of seconds"
[ -z "${FRESH_HOSTS:-}" ] || [ -r "$FRESH_HOSTS" ] || die "FRESH_HOSTS=$FRESH_HOSTS is not readable"

head=$(git -C "$REPO" rev-parse HEAD) || die "$REPO is not a git repository"
if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no)" ]; then
    say "note: uncommitted changes in $REPO are not tested: the root clones the committed HEAD"
fi


# --- the host's Debian sources ----------------------------------------------

# "URI SUITE COMPONENT" for every enabled deb source of the host, as apt
# itself reads them (one-line or deb822 files alike)
targets=$(apt-get indextargets --no-release-info \
        --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' \
        'Created-By: Packages' 'Target-Of: deb') \
    || die "apt-get indextargets failed: cannot read the host's apt sources"
sources=$(awk -v s="$SUITE" '$2 == s || index($2, s "-") == 1' <<< "$targets" | sort -u)
mirror=$(awk -v s="$SUITE" '$2 == s { print $1; exit }' <<< "$sources")
[ -n "$mirror" ] \
    || die "the host's apt sources have no Debian $SUITE suite (apt-get indextargets); nothing to debootstrap from"
components=$(awk -v s="$SUITE" -v m="$mirror" '$1 == m && $2 == s { print $3 }' <<< "$sources" \
    | paste -sd, -)
[ -r "$KEYRING" ] || die "$KEYRING missing (apt-get install debian-archive-keyring)"

if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        debootstrap > /dev/null || die "apt-get install debootstrap failed"
fi

# debootstrap fetches with its own client: give it apt's proxy, if any
if [ -z "${http_proxy:-}" ]; then
    apt_proxy=
    eval "$(apt-config shell apt_proxy Acquire::http::Proxy)"
    if [ -n "$apt_proxy" ] && [ "$apt_proxy" != DIRECT ]; then
        export http_proxy=$apt_proxy
    fi
fi


# --- the root, and leaving nothing behind -------------------------------------

work=${FRESH_DIR:-$(mktemp -d /var/tmp/fresh-debian.XXXXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
root=$work/root
logs=$work/logs
[ ! -e "$root" ] && [ ! -e "$logs" ] \
    || die "$root or $logs exists already; remove it or pick another FRESH_DIR"
mkdir "$logs"

# processes whose root directory is ours: only what this script started
root_pids() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && echo "${p#/proc/}"
    done
    return 0
}

# mount points at or under the root, deepest first
root_mounts() {
    awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts \
        | sort -r
}

cleanup() {
    local rc=$? pids p m i
    trap - EXIT INT TERM
    set +e
    pids=$(root_pids)
    if [ -n "$pids" ]; then
        say "stopping what still runs in the root: $(echo $pids)"
        kill -TERM $pids 2>/dev/null
        for ((i = 0; i < 50; i++)); do
            [ -z "$(root_pids)" ] && break
            sleep 0.1
        done
        pids=$(root_pids)
        [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
    fi
    for m in $(root_mounts); do
        umount "$m" 2>/dev/null || umount -l "$m" \
            || say "could not unmount $m"
    done
    if [ -n "$(root_mounts)" ]; then
        say "FAILED: still mounted under $root, not removing it:"
        root_mounts >&2
        rc=1
    elif [ "${FRESH_KEEP:-}" = 1 ]; then
        say "kept the root: $root"
    else
        rm -rf --one-file-system "$root" "$logs"
        rmdir "$work" 2>/dev/null
    fi
    [ "$rc" = 0 ] || say "FAILED (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# long CMD...: a long step, waited for in the background, so that a signal
# to this script stops it at once (bash runs a trap only after a foreground
# command ends; the trap then stops the step)
long() {
    "$@" < /dev/null &
    wait $!
}

t_all=$SECONDS


# --- debootstrap ----------------------------------------------------------------

say "debootstrap --variant=minbase $SUITE from $mirror ($components) into $root"
t=$SECONDS
if ! long debootstrap --variant=minbase --include=make,git,ca-certificates \
        --components="$components" --keyring="$KEYRING" \
        "$SUITE" "$root" "$mirror" > "$logs/debootstrap.log" 2>&1
then
    tail -30 "$logs/debootstrap.log" >&2
    die "debootstrap failed"
fi
t_debootstrap=$((SECONDS - t))
say "debootstrap took ${t_debootstrap}s"

# the host's Debian sources, Debian's keyring
rm -f "$root/etc/apt/sources.list"
awk -v k="$KEYRING" '
    { key = $1 " " $2; if (!(key in comps)) order[n++] = key; comps[key] = comps[key] " " $3 }
    END {
        for (i = 0; i < n; i++) {
            split(order[i], f, " ")
            if (i) print ""
            print "Types: deb"; print "URIs: " f[1]; print "Suites: " f[2]
            print "Components:" comps[order[i]]; print "Signed-By: " k
        }
    }' <<< "$sources" > "$root/etc/apt/sources.list.d/debian.sources"
# the host's Acquire:: settings that decide how apt reaches them
apt-config dump \
    | grep -E '^Acquire::(Check-Valid-Until|Check-Date|Retries|ForceIPv4|ForceIPv6|https?|ftp|socks)(::| )' \
    > "$root/etc/apt/apt.conf.d/90host-acquire" || true

printf '#!/bin/sh\n# a chroot: no daemons on package installs\nexit 101\n' \
    > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# the installer's /etc/hosts (netcfg's, for a machine without a domain)
if [ -n "${FRESH_HOSTS:-}" ]; then
    cp -L "$FRESH_HOSTS" "$root/etc/hosts"
else
    printf '%s\n' \
        "127.0.0.1	localhost" \
        "127.0.1.1	$(uname -n)" \
        "" \
        "# The following lines are desirable for IPv6 capable hosts" \
        "::1     localhost ip6-localhost ip6-loopback" \
        "ff02::1 ip6-allnodes" \
        "ff02::2 ip6-allrouters" > "$root/etc/hosts"
fi

if [ -d /usr/local/share/ca-certificates ] \
   && [ -n "$(ls -A /usr/local/share/ca-certificates)" ]
then
    cp -rL /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates > "$logs/update-ca.log" 2>&1 \
        || { cat "$logs/update-ca.log" >&2; die "update-ca-certificates failed in the root"; }
fi

# a fresh root shell's environment, and what reaches the registries
CHROOT_ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
            HOME=/root LANG=C.UTF-8)
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ]; then
    [ -r "$NODE_EXTRA_CA_CERTS" ] || die "NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS is not readable"
    mkdir -p "$root/usr/local/share/host-ca"
    cp -L "$NODE_EXTRA_CA_CERTS" "$root/usr/local/share/host-ca/node-extra-ca-certs.pem"
    CHROOT_ENV+=(NODE_EXTRA_CA_CERTS=/usr/local/share/host-ca/node-extra-ca-certs.pem)
fi
for v in http_proxy https_proxy ftp_proxy no_proxy all_proxy \
         HTTP_PROXY HTTPS_PROXY FTP_PROXY NO_PROXY ALL_PROXY
do
    [ -n "${!v:-}" ] && CHROOT_ENV+=("$v=${!v}")
done
while IFS= read -r v; do
    [ -n "$v" ] && CHROOT_ENV+=("$v=${!v}")
done < <(compgen -e | grep -iE '^npm_config_' || true)

for f in "$HOME/.npmrc:/root/.npmrc" /etc/npmrc:/etc/npmrc \
         /usr/local/etc/npmrc:/usr/local/etc/npmrc
do
    if [ -f "${f%%:*}" ]; then
        mkdir -p "$(dirname "$root${f#*:}")"
        cp -L "${f%%:*}" "$root${f#*:}"
    fi
done

mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"

# in_root CMD...: CMD in the root, with only the environment above
in_root() {
    chroot "$root" /usr/bin/env -i "${CHROOT_ENV[@]}" "$@"
}

# in_root_long CMD...: the same for a long step (see long)
in_root_long() {
    long in_root "$@"
}

# the committed HEAD, as a bundle the root's own git clones from
git -C "$REPO" bundle create "$root/tmp/repo.bundle" HEAD > /dev/null 2>&1 \
    || die "git bundle of HEAD failed"
for c in "$CLONE" "$RUN_CLONE"; do
    in_root git -c advice.detachedHead=false clone -q /tmp/repo.bundle "$c" < /dev/null \
        || die "git clone in the root failed"
done
rm -f "$root/tmp/repo.bundle"
say "cloned $head into $CLONE and $RUN_CLONE"
# the order a client that tries only the first address meets (Node 18)
localhost_order=$(in_root getent ahosts localhost \
    | awk '$2 == "STREAM" { printf "%s%s", sep, $1; sep = " " }') || true
say "localhost resolves in the root to: ${localhost_order:-nothing}"


# --- make test ------------------------------------------------------------------

say "== make test (in $CLONE)"
t=$SECONDS
if ! in_root_long sh -c "cd $CLONE && make test"; then
    die "make test failed in the fresh Debian $SUITE root (after $((SECONDS - t))s)"
fi
t_test=$((SECONDS - t))
say "make test passed in ${t_test}s"

node_bin=$(in_root sh -c 'command -v node') || die "no node in the root after make test"
node_version=$(in_root node --version)
node_pkg=$(in_root dpkg-query -S "$(in_root readlink -f "$node_bin")" 2>/dev/null | cut -d: -f1) \
    || node_pkg="not from a Debian package"
node_pkg_version=$(in_root dpkg-query -W -f='${Version}' nodejs 2>/dev/null || true)
say "Node.js $node_version ($node_bin, $node_pkg ${node_pkg_version})"


# --- make run ----------------------------------------------------------------

# the README's curl, as written there (it may span lines with \)
curl_cmd=$(awk '/^curl .*127\.0\.0\.1:8080\/app/ { on = 1 }
                on { print; if (!/\\$/) exit }' "$REPO/README.md")
[ -n "$curl_cmd" ] || die "no 'curl ... 127.0.0.1:8080/app' command in README.md"

say "== make run (in $RUN_CLONE), then the README's curl"
t=$SECONDS
setsid chroot "$root" /usr/bin/env -i "${CHROOT_ENV[@]}" \
    sh -c "cd $RUN_CLONE && exec make run" < /dev/null > "$logs/run.log" 2>&1 &
run_pid=$!

run_ready=0
for ((i = 0; i < RUN_TIMEOUT * 10; i++)); do
    if grep -q '^Ctrl-C stops all of it' "$logs/run.log"; then
        run_ready=1
        break
    fi
    kill -0 "$run_pid" 2>/dev/null || break
    sleep 0.1
done
if [ "$run_ready" != 1 ]; then
    cat "$logs/run.log" >&2
    die "make run did not get ready (within ${RUN_TIMEOUT}s, or it exited)"
fi
t_run_ready=$((SECONDS - t))
say "make run ready in ${t_run_ready}s"

if ! in_root timeout 60 sh -c "$curl_cmd" < /dev/null > "$logs/curl.out" 2> "$logs/curl.err"; then
    cat "$logs/run.log" "$logs/curl.err" >&2
    die "the README's curl failed"
fi
# the demo upstream's echo must carry the session the module got from the
# emulator: a JWT, a user id and a session id
if ! in_root node -e '
    const echo = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const h = {};
    for (const [k, v] of Object.entries(echo.headers || {})) h[k.toLowerCase()] = v;
    const want = {
      "x-stytch-session-jwt": /^[\w-]+\.[\w-]+\.[\w-]+$/,
      "x-stytch-user-id": /^user-test-/,
      "x-stytch-session-id": /^session-test-/,
    };
    let ok = true;
    for (const [name, re] of Object.entries(want)) {
      if (typeof h[name] !== "string" || !re.test(h[name])) {
        console.error(`missing or malformed: ${name}: ${JSON.stringify(h[name])}`);
        ok = false;
      }
    }
    process.exit(ok ? 0 : 1);' < "$logs/curl.out"
then
    cat "$logs/run.log" "$logs/curl.out" >&2
    die "the demo upstream did not get the session headers"
fi
say "the README's curl: the upstream got X-Stytch-Session-Jwt, X-Stytch-User-Id and X-Stytch-Session-Id"

# stop it: make passes SIGTERM on to scripts/run.sh, which stops what it started
kill -TERM "$run_pid"
for ((i = 0; i < 300; i++)); do
    kill -0 "$run_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$run_pid" 2>/dev/null; then
    cat "$logs/run.log" >&2
    die "make run did not stop within 30s of SIGTERM"
fi
wait "$run_pid" || true
left=$(root_pids)
if [ -n "$left" ]; then
    ps -o pid,args -p "$(echo $left | tr ' ' ,)" >&2 || true
    die "make run left processes behind after it stopped"
fi
grep -q '^stopped nginx' "$logs/run.log" \
    || { cat "$logs/run.log" >&2; die "make run did not say it stopped nginx"; }
t_run=$((SECONDS - t))
say "make run stopped cleanly; the run took ${t_run}s"


# --- summary ---------------------------------------------------------------------

say "passed: Debian $SUITE minbase + make, git, ca-certificates; Node.js $node_version ($node_pkg $node_pkg_version); localhost: $localhost_order"
say "times: debootstrap ${t_debootstrap}s, make test ${t_test}s, make run ${t_run}s (ready in ${t_run_ready}s), all $((SECONDS - t_all))s"
