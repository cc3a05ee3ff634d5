#!/usr/bin/env bash
# scripts/run.sh: what `make run` runs.  Starts, on loopback only:
#
#   - the Stytch emulator (t/emulator) on localhost:$EMULATOR_PORT, control
#     API on $EMULATOR_CONTROL_PORT; skipped when STYTCH_PROJECT_ID,
#     STYTCH_SECRET and STYTCH_PROFILE_ID are set: then Stytch's test API
#     (https://test.stytch.com) is used, verified with the system CA bundle;
#   - scripts/demo-upstream.mjs on localhost:$UPSTREAM_PORT, which echoes the
#     headers it gets;
#   - Debian's nginx with build/ngx_http_stytch_tat_module.so on
#     127.0.0.1:$PORT and [::1]:$PORT.
#
# All three answer on 127.0.0.1 and ::1 (where the machine has it) on the
# same port, so that a client naming localhost reaches them whichever
# address it tries first (the Node.js ones: t/emulator/lib/loopback.mjs).
#
# It stays in the foreground until Ctrl-C and stops all three then.  With
# RUN_DETACH=1 it leaves them running; `scripts/run.sh stop` stops them.
#
# Environment (all optional):
#   PORT (8080)  UPSTREAM_PORT (8081)  EMULATOR_PORT (8443)
#   EMULATOR_CONTROL_PORT (8444)  RUN_DIR (/tmp/stytch-tat-run)  RUN_DETACH
#   NGINX_BIN (/usr/sbin/nginx)  MODULE (build/ngx_http_stytch_tat_module.so)
#   STYTCH_ISSUER (https://auth.example.com)
#   STYTCH_AUDIENCE (https://api.example.com)
#   STYTCH_PROJECT_ID STYTCH_SECRET STYTCH_PROFILE_ID: use real Stytch
#   STYTCH_API_HOST: Stytch's host with real Stytch (default test.stytch.com,
#     api.stytch.com for a project-live-... project id)
#   STYTCH_B2B_PROFILE_ID STYTCH_ORGANIZATION_ID: add the B2B /org location
#     with real Stytch

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATES=$ROOT/scripts/run

RUN_DIR=${RUN_DIR:-/tmp/stytch-tat-run}
PORT=${PORT:-8080}
UPSTREAM_PORT=${UPSTREAM_PORT:-8081}
EMULATOR_PORT=${EMULATOR_PORT:-8443}
EMULATOR_CONTROL_PORT=${EMULATOR_CONTROL_PORT:-8444}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
MODULE=${MODULE:-$ROOT/build/ngx_http_stytch_tat_module.so}
ISSUER=${STYTCH_ISSUER:-https://auth.example.com}
AUDIENCE=${STYTCH_AUDIENCE:-https://api.example.com}

# the emulator's fixed demo project (t/emulator/config.example.json's ids)
EMU_PROJECT_ID=project-test-00000000-0000-0000-0000-000000000000
EMU_SECRET=secret-test-emulator-not-a-real-secret-000000
EMU_PROFILE_ID=trusted-auth-token-profile-test-00000000-0000-0000-0000-000000000000
EMU_B2B_PROFILE_ID=trusted-auth-token-profile-test-b2b00000-0000-0000-0000-000000000000
EMU_ORGANIZATION_ID=organization-test-00000000-0000-0000-0000-000000000000

SYSTEM_CA=/etc/ssl/certs/ca-certificates.crt

say() { printf '%s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }


# --- process bookkeeping: RUN_DIR/NAME.pid, checked against the command line
# before anything is signalled, so a stale pid file never hits a stranger

# proc_alive NAME: the pid in RUN_DIR/NAME.pid is running and is ours
proc_alive() {
    local pidfile=$RUN_DIR/$1.pid pid cmd
    [ -s "$pidfile" ] || return 1
    pid=$(head -n1 "$pidfile" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline")
    case $1 in
        nginx)    [[ $cmd == *"nginx: master process"* ]] ;;
        emulator) [[ $cmd == *"server.mjs"*"--dir $RUN_DIR/emulator"* ]] ;;
        upstream) [[ $cmd == *"demo-upstream.mjs"* ]] ;;
    esac
}

# stop_proc NAME SIGNAL: signal it, wait up to 5 s, then SIGKILL
stop_proc() {
    local name=$1 sig=$2 pid i
    if ! proc_alive "$name"; then
        rm -f "$RUN_DIR/$name.pid"
        return 0
    fi
    pid=$(head -n1 "$RUN_DIR/$name.pid" 2>/dev/null) || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        proc_alive "$name" || break
        sleep 0.1
    done
    if proc_alive "$name"; then
        say "$name ($pid) did not stop, killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # nginx removes its own pid file; the others are ours to remove
    [ "$name" = nginx ] || rm -f "$RUN_DIR/$name.pid"
    say "stopped $name ($pid)"
}

stop_all() {
    stop_proc nginx QUIT       # graceful: finish requests in flight
    stop_proc upstream TERM
    stop_proc emulator TERM
}

any_running() {
    proc_alive nginx || proc_alive upstream || proc_alive emulator
}

if [ "${1:-}" = stop ]; then
    if ! any_running; then
        say "nothing running from $RUN_DIR"
        exit 0
    fi
    stop_all
    exit 0
elif [ $# -gt 0 ]; then
    die "usage: scripts/run.sh [stop]"
fi


# --- checks -------------------------------------------------------------

[ -x "$NGINX_BIN" ] || die "$NGINX_BIN not found (apt-get install nginx-core)"
[ -f "$MODULE" ] || die "$MODULE not found: run make first"
command -v node >/dev/null || die "node not found (apt-get install nodejs npm)"
command -v openssl >/dev/null || die "openssl not found"

# values that go into nginx.conf and JSON: keep them to a quote-free charset
safe() {
    [[ $2 =~ ^[A-Za-z0-9._:/@+=-]+$ ]] \
        || die "$1 \"$2\" has characters the demo does not quote (allowed: A-Z a-z 0-9 . _ : / @ + = -)"
}

for v in PORT UPSTREAM_PORT EMULATOR_PORT EMULATOR_CONTROL_PORT; do
    [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] && [ "${!v}" -le 65535 ] \
        || die "$v must be a port number, not \"${!v}\""
done
safe STYTCH_ISSUER "$ISSUER"
safe STYTCH_AUDIENCE "$AUDIENCE"
safe RUN_DIR "$RUN_DIR"
safe MODULE "$MODULE"

if [ -n "${STYTCH_PROJECT_ID:-}" ] && [ -n "${STYTCH_SECRET:-}" ] \
   && [ -n "${STYTCH_PROFILE_ID:-}" ]
then
    MODE=stytch
    safe STYTCH_PROJECT_ID "$STYTCH_PROJECT_ID"
    safe STYTCH_PROFILE_ID "$STYTCH_PROFILE_ID"
    case $STYTCH_PROJECT_ID in
        project-live-*) STYTCH_HOST=${STYTCH_API_HOST:-api.stytch.com} ;;
        *)              STYTCH_HOST=${STYTCH_API_HOST:-test.stytch.com} ;;
    esac
    safe STYTCH_API_HOST "$STYTCH_HOST"
    [ -r "$SYSTEM_CA" ] || die "$SYSTEM_CA missing (apt-get install ca-certificates)"
else
    MODE=emulator
    if [ -n "${STYTCH_PROJECT_ID:-}${STYTCH_SECRET:-}${STYTCH_PROFILE_ID:-}" ]; then
        say "note: real Stytch needs all of STYTCH_PROJECT_ID, STYTCH_SECRET and STYTCH_PROFILE_ID; using the emulator"
    fi
    STYTCH_HOST=localhost       # a name in the emulator's certificate
fi

if any_running; then
    say "stopping the previous run in $RUN_DIR"
    stop_all
fi

port_busy() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

ports="PORT UPSTREAM_PORT"
[ $MODE = emulator ] && ports="$ports EMULATOR_PORT EMULATOR_CONTROL_PORT"
for v in $ports; do
    for a in 127.0.0.1 ::1; do
        port_busy "${!v}" $a && die "port ${!v} (\$$v) is in use on $a; pick another, e.g. $v=$(( ${!v} + 10000 ))"
    done
done


# --- runtime directory --------------------------------------------------

mkdir -p "$RUN_DIR" "$RUN_DIR/tmp"
# nginx workers (www-data when run as root) only need to traverse it
chmod 755 "$RUN_DIR"

if [ ! -s "$RUN_DIR/signing-key.pem" ]; then
    (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
        -out "$RUN_DIR/signing-key.pem" 2>/dev/null) \
        || die "openssl genpkey failed"
    say "generated the signing key $RUN_DIR/signing-key.pem (RSA 2048)"
fi
openssl pkey -in "$RUN_DIR/signing-key.pem" -pubout -out "$RUN_DIR/signing-key.pub.pem"

# the credentials file: never on the command line, never world-readable
(
    umask 077
    if [ $MODE = stytch ]; then
        printf '%s:%s\n' "$STYTCH_PROJECT_ID" "$STYTCH_SECRET"
    else
        printf '%s:%s\n' "$EMU_PROJECT_ID" "$EMU_SECRET"
    fi > "$RUN_DIR/credentials"
)
chmod 600 "$RUN_DIR/credentials"

JWKS_URL=http://127.0.0.1:$PORT/.well-known/jwks.json

# nginx on ::1 too, where there is one (as the Node.js servers)
if grep -qs '^0\{31\}1 .* lo$' /proc/net/if_inet6; then
    TPL_LISTEN_V6="listen [::1]:$PORT;"
else
    TPL_LISTEN_V6="# (no ::1 on this machine)"
fi

export TPL_LISTEN_V6 TPL_RUN_DIR=$RUN_DIR TPL_MODULE=$MODULE TPL_PORT=$PORT \
    TPL_UPSTREAM_PORT=$UPSTREAM_PORT TPL_ISSUER=$ISSUER TPL_AUDIENCE=$AUDIENCE \
    TPL_STYTCH_HOST=$STYTCH_HOST TPL_JWKS_URL=$JWKS_URL

# nginx run as root drops its workers to an unprivileged user
if [ "$(id -u)" = 0 ]; then
    if id www-data >/dev/null 2>&1; then
        TPL_USER_LINE="user www-data;"
    else
        TPL_USER_LINE="user nobody;"
    fi
else
    TPL_USER_LINE="# (not root: workers run as $(id -un))"
fi
export TPL_USER_LINE

# the internal location's body: examples/stytch_attest.conf itself; for the
# emulator only the CA changes (its private CA instead of the system bundle)
if [ $MODE = emulator ]; then
    grep -q "^proxy_ssl_trusted_certificate $SYSTEM_CA;" \
        "$ROOT/examples/stytch_attest.conf" \
        || die "examples/stytch_attest.conf no longer names $SYSTEM_CA; update run.sh"
    sed "s#^proxy_ssl_trusted_certificate $SYSTEM_CA;#proxy_ssl_trusted_certificate $RUN_DIR/emulator/ca.pem;  \# the emulator's CA (run.sh)#" \
        "$ROOT/examples/stytch_attest.conf" > "$RUN_DIR/stytch_attest.conf"
else
    cp "$ROOT/examples/stytch_attest.conf" "$RUN_DIR/stytch_attest.conf"
fi

if [ $MODE = emulator ]; then
    export TPL_STYTCH_SERVER=127.0.0.1:$EMULATOR_PORT \
        TPL_STYTCH_WHAT="the Stytch emulator" \
        TPL_PROJECT_ID=$EMU_PROJECT_ID TPL_SECRET=$EMU_SECRET \
        TPL_PROFILE_ID=$EMU_PROFILE_ID TPL_B2B_PROFILE_ID=$EMU_B2B_PROFILE_ID \
        TPL_ORGANIZATION_ID=$EMU_ORGANIZATION_ID
    node "$TEMPLATES/render.mjs" "$TEMPLATES/emulator.json.in" "$RUN_DIR/emulator.json"
    node "$TEMPLATES/render.mjs" "$TEMPLATES/b2b.conf.in" "$RUN_DIR/b2b.conf"
else
    export TPL_STYTCH_SERVER=$STYTCH_HOST:443 TPL_STYTCH_WHAT="Stytch" \
        TPL_PROFILE_ID=$STYTCH_PROFILE_ID
    if [ -n "${STYTCH_B2B_PROFILE_ID:-}" ] && [ -n "${STYTCH_ORGANIZATION_ID:-}" ]; then
        safe STYTCH_B2B_PROFILE_ID "$STYTCH_B2B_PROFILE_ID"
        safe STYTCH_ORGANIZATION_ID "$STYTCH_ORGANIZATION_ID"
        export TPL_B2B_PROFILE_ID=$STYTCH_B2B_PROFILE_ID \
            TPL_ORGANIZATION_ID=$STYTCH_ORGANIZATION_ID
        node "$TEMPLATES/render.mjs" "$TEMPLATES/b2b.conf.in" "$RUN_DIR/b2b.conf"
    else
        echo "# B2B: set STYTCH_B2B_PROFILE_ID and STYTCH_ORGANIZATION_ID" \
            > "$RUN_DIR/b2b.conf"
    fi
fi
node "$TEMPLATES/render.mjs" "$TEMPLATES/nginx.conf.in" "$RUN_DIR/nginx.conf"


# --- start ------------------------------------------------------------------

STARTED=0
on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    # stop what this run started: always on Ctrl-C or failure, and at the
    # end of a foreground run; a detached run that got ready keeps running
    if [ "$STARTED" = 1 ] && { [ "${RUN_DETACH:-}" != 1 ] || [ "$rc" != 0 ]; }; then
        say ""
        stop_all
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_bg NAME LOG CMD...: in its own session, so a detached run outlives
# this shell and a Ctrl-C reaches only this script, which stops it itself
start_bg() {
    local name=$1 log=$2
    shift 2
    setsid "$@" < /dev/null > "$log" 2>&1 &
    echo $! > "$RUN_DIR/$name.pid"
}

# started_dead NAME: a process start_bg started has exited (a zombie counts:
# it is this shell's child until reaped; proc_alive cannot tell, since the
# command line is this shell's own until the exec)
started_dead() {
    local pid state
    pid=$(head -n1 "$RUN_DIR/$1.pid")
    kill -0 "$pid" 2>/dev/null || return 0
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
    [ "$state" = Z ]
}

# wait_for WHAT SECONDS CMD...: until CMD succeeds
wait_for() {
    local what=$1 secs=$2 i
    shift 2
    for ((i = 0; i < secs * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

if [ $MODE = emulator ]; then
    if [ ! -d "$ROOT/t/emulator/node_modules" ]; then
        say "installing the emulator's dependencies (npm ci in t/emulator)"
        (cd "$ROOT/t/emulator" && npm ci --no-audit --no-fund >/dev/null) \
            || die "npm ci in t/emulator failed"
    fi
    rm -f "$RUN_DIR/emulator/ready"
    start_bg emulator "$RUN_DIR/emulator.log" \
        node "$ROOT/t/emulator/server.mjs" \
        --listen "localhost:$EMULATOR_PORT" \
        --control "localhost:$EMULATOR_CONTROL_PORT" \
        --dir "$RUN_DIR/emulator" --config "$RUN_DIR/emulator.json"
    STARTED=1
    emulator_ready() {
        started_dead emulator && { cat "$RUN_DIR/emulator.log" >&2; die "the emulator exited"; }
        [ -s "$RUN_DIR/emulator/ready" ] && [ -s "$RUN_DIR/emulator/ca.pem" ]
    }
    wait_for emulator 20 emulator_ready \
        || { cat "$RUN_DIR/emulator.log" >&2; die "the emulator did not get ready"; }
fi

start_bg upstream "$RUN_DIR/upstream.log" \
    node "$ROOT/scripts/demo-upstream.mjs" --listen "localhost:$UPSTREAM_PORT"
STARTED=1
upstream_ready() {
    started_dead upstream && { cat "$RUN_DIR/upstream.log" >&2; die "the demo upstream exited"; }
    grep -q "ready" "$RUN_DIR/upstream.log"
}
wait_for upstream 10 upstream_ready || die "the demo upstream did not get ready"

NGINX=("$NGINX_BIN" -p "$RUN_DIR/" -c "$RUN_DIR/nginx.conf" -e "$RUN_DIR/error.log")
"${NGINX[@]}" -t -q 2>"$RUN_DIR/nginx-t.log" \
    || { cat "$RUN_DIR/nginx-t.log" >&2; die "nginx -t failed for $RUN_DIR/nginx.conf"; }
"${NGINX[@]}" 2>"$RUN_DIR/nginx-start.log" \
    || { cat "$RUN_DIR/nginx-start.log" >&2; die "nginx did not start, see $RUN_DIR/error.log"; }
wait_for nginx 10 proc_alive nginx || die "nginx did not start, see $RUN_DIR/error.log"
wait_for nginx 10 port_busy "$PORT" || die "nginx does not listen on $PORT, see $RUN_DIR/error.log"


# --- tell the user --------------------------------------------------------

say ""
say "ngx_http_stytch_tat_module demo, runtime files in $RUN_DIR:"
say "  nginx          http://127.0.0.1:$PORT   (pid $(cat "$RUN_DIR/nginx.pid"); $RUN_DIR/nginx.conf, error log $RUN_DIR/error.log)"
say "    /app         identity -> Trusted Auth Token -> Stytch session -> upstream"
say "    /step-up     a second factor added to the session of the stytch_session cookie"
say "    /documents   authorization at the edge: the session's roles against the RBAC policy"
if [ -s "$RUN_DIR/b2b.conf" ] && grep -q location "$RUN_DIR/b2b.conf"; then
    say "    /org         the same for a B2B member of $TPL_ORGANIZATION_ID"
fi
say "    $JWKS_URL   the module's public keys"
say "  demo upstream  http://127.0.0.1:$UPSTREAM_PORT   (pid $(cat "$RUN_DIR/upstream.pid"); echoes what it receives)"
if [ $MODE = emulator ]; then
    say "  Stytch         emulator https://127.0.0.1:$EMULATOR_PORT   (pid $(cat "$RUN_DIR/emulator.pid"); log $RUN_DIR/emulator.log)"
    say "                 control API http://127.0.0.1:$EMULATOR_CONTROL_PORT (e.g. curl -s 127.0.0.1:$EMULATOR_CONTROL_PORT/state)"
else
    say "  Stytch         https://$STYTCH_HOST (project $STYTCH_PROJECT_ID, profile $STYTCH_PROFILE_ID)"
    say ""
    say "  Your Trusted Auth Token profile in the Stytch dashboard needs:"
    say "    issuer    $ISSUER"
    say "    audience  $AUDIENCE"
    say "    mapping   email -> email, token_id -> jti, external_user_id -> sub, role_ids -> assignments"
    if [ -n "${TPL_B2B_PROFILE_ID:-}" ]; then
        say "              (the B2B profile: external_member_id -> sub and organization_id -> org)"
    fi
    say "    keys      the JWKS URL $JWKS_URL,"
    say "              which Stytch's servers must be able to fetch: on loopback they cannot,"
    say "              so publish it (a public host or a tunnel to port $PORT) and use that URL;"
    say "              or paste this PEM public key instead:"
    sed 's/^/              /' "$RUN_DIR/signing-key.pub.pem"
fi
say ""
say "Try (the demo takes the identity from X-Email/X-User/X-Groups request"
say "headers; in production it comes from auth_request, see examples/nginx.conf):"
say ""
say "  curl -s -c $RUN_DIR/cookies http://127.0.0.1:$PORT/app -H 'X-Email: ada.lovelace@example.com' -H 'X-User: user_123456' -H 'X-Groups: editor,reader'"
say ""
say "The answer is the demo upstream's echo of the request nginx sent it: look"
say "for X-Stytch-Session-Jwt (a Stytch session JWT, 5 minutes), X-Stytch-User-Id"
say "and X-Stytch-Session-Id, added by the module after the exchange; a client's"
say "own X-Stytch-* headers are dropped.  session_jwt_payload_unverified shows the"
say "JWT's claims: \"groups\", a session custom claim (stytch_tat_session_claim), at"
say "the top level.  Without X-Email the answer is 401; a refusal by Stytch is 403"
say "with the reason in the X-Stytch-Tat-Error header."
say ""
say "Step-up: a second factor (here a validation id in a header) added to the session"
say "of the stytch_session cookie the first request stored; the same session id comes"
say "back, with two authentication factors, and its length unchanged:"
say ""
say "  curl -s -b $RUN_DIR/cookies http://127.0.0.1:$PORT/step-up -H 'X-Email: ada.lovelace@example.com' -H 'X-User: user_123456' -H \"X-Validation-Id: pin-check-\$RANDOM\""
say ""
if [ $MODE = emulator ]; then
    say "Authorization at the edge: /documents requires documents:write, which the"
    say "demo user's role editor grants (reader does not), and /documents/delete"
    say "documents:delete, which only admin has (the emulator's RBAC policy, from"
    say "scripts/run/emulator.json.in); nginx decides, with no call to Stytch per request:"
else
    say "Authorization at the edge: /documents requires documents:write and"
    say "/documents/delete documents:delete, decided in nginx against your project's"
    say "RBAC policy (GET /v1/rbac/policy) and the session's roles:"
fi
say ""
say "  curl -s -o /dev/null -D - http://127.0.0.1:$PORT/documents -H 'X-Email: ada.lovelace@example.com' -H 'X-User: user_123456' -H 'X-Groups: editor,reader'"
say "  curl -s -o /dev/null -D - http://127.0.0.1:$PORT/documents/delete -H 'X-Email: ada.lovelace@example.com' -H 'X-User: user_123456' -H 'X-Groups: editor,reader'"
say ""
say "The first is 200 with X-Stytch-Tat-Granted-Roles: editor; the second 403 with"
say "X-Stytch-Tat-Error: permission_denied (X-Groups: admin gets 200 there)."
say ""

if [ "${RUN_DETACH:-}" = 1 ]; then
    if [ "$RUN_DIR" = /tmp/stytch-tat-run ]; then
        say "Running in the background; stop with: scripts/run.sh stop"
    else
        say "Running in the background; stop with: RUN_DIR=$RUN_DIR scripts/run.sh stop"
    fi
    exit 0
fi

say "Ctrl-C stops all of it."
while proc_alive nginx && proc_alive upstream \
      && { [ $MODE != emulator ] || proc_alive emulator; }
do
    sleep 1
done
for p in nginx upstream emulator; do
    [ $p = emulator ] && [ $MODE != emulator ] && continue
    proc_alive $p || say "$p exited unexpectedly (logs in $RUN_DIR)"
done
exit 1
