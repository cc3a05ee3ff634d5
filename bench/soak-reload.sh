#!/usr/bin/env bash
# Soak: a steady load on SOAK_CACHED (200) cached identities for
# SOAK_SECONDS (20) while `nginx -s reload` runs SOAK_RELOADS (10) times at
# even intervals (the configuration alternates between two generations that
# differ by one add_header, so every reload really replaces the workers).
# Two runs of the same shape:
#
#   A. wrk (2 threads, SOAK_CONNECTIONS=32 keep-alive connections). wrk
#      counts a request that meets a closed keep-alive connection as a read
#      (or write) error and does not retry it: nginx, on reload, closes its
#      idle keep-alive connections, and the old worker closes a busy one
#      once its answer is sent, though that answer said keep-alive. A
#      request wrk wrote on such a connection meanwhile is never read by
#      nginx. Checks: non-2xx 0, connect errors 0, timeouts 0, and read +
#      write errors at most connections x reloads (each reload closes each
#      connection at most once); the errors are reported.
#   B. bench/soak/load.mjs with --retry-idle-close: it retries a request
#      once, only when it failed on a reused keep-alive connection before any
#      byte of the answer came (RFC 9112 9.3.1). Checks: every request
#      answered 200, no other transport error, every retry answered.
#
# Both: the zone's entries stay (>= SOAK_CACHED), every answer is a cache
# HIT, the emulator receives no attest call during the load, the
# reloads took (new worker pids each time), the old workers exit, and the
# error log has no "exited on signal", [alert], [emerg] or [crit].
#
# Loopback only; each load is bounded by SOAK_SECONDS (wrk -d, load.mjs
# --duration and --max-seconds).
set -eu
. "$(dirname "$0")/soak/lib.sh"
k=${SOAK_CACHED:-200}
secs=${SOAK_SECONDS:-20}
reloads=${SOAK_RELOADS:-10}
conns=${SOAK_CONNECTIONS:-32}
prefix=cached-$RANDOM

soak_setup reload
soak_start_emulator
gen=0
soak_start_nginx 10m "add_header X-Soak-Generation $gen always;"

# warm the cache: K identities, one attest each
warm=$(node "$soak_root/bench/soak/load.mjs" --url "$base/app" --total "$k" --concurrency 16 \
       --identities "cycle:$k" --prefix "$prefix" --max-seconds 60)
entries0=$(soak_status | jq .zones.soak.entries)
echo "== warm-up: $(jq -c .statuses <<< "$warm"), $(emu_attests) attest calls, zone entries $entries0"
[ "$(jq -r '.statuses["200"] // 0' <<< "$warm")" = "$k" ] || soak_fail "warm-up: $(jq -c .statuses <<< "$warm")"
[ "$entries0" -ge "$k" ] || soak_fail "warm-up: $entries0 entries for $k identities"

reload_loop() {
    # SOAK_RELOADS reloads spread over the load, each with a new generation;
    # writes one line per reload: old workers -> new workers
    local i interval old new
    interval=$(awk -v s="$secs" -v n="$reloads" 'BEGIN { printf "%.2f", s / (n + 1) }')
    for i in $(seq "$reloads"); do
        sleep "$interval"
        old=$(soak_workers)
        gen=$((gen + 1))
        soak_conf 10m "add_header X-Soak-Generation $gen always;"
        nginx -q -s reload -p "$work" -c conf/nginx.conf -e "$work/logs/error.log" \
            || echo "reload $i: nginx -s reload failed"
        for _ in $(seq 50); do
            new=$(soak_workers)
            [ -n "$new" ] && [ "$(comm -12 <(tr ' ' '\n' <<< "$old" | sort) <(tr ' ' '\n' <<< "$new" | sort) | grep -c .)" = 0 ] \
                && [ "$(wc -w <<< "$new")" = 2 ] && break
            sleep 0.05
        done
        if [ -n "$new" ] && [ "$(wc -w <<< "$new")" = 2 ] \
           && [ -z "$(comm -12 <(tr ' ' '\n' <<< "$old" | sort) <(tr ' ' '\n' <<< "$new" | sort) | grep .)" ]; then
            echo "reload $i: workers $old-> $new(replaced)"
        else
            echo "reload $i: workers $old-> $new(NOT replaced)"
        fi
    done
}

# after_phase NAME: the checks that do not depend on the client
after_phase() {
    local calls st entries old
    calls=$(emu_attests)
    st=$(soak_status)
    entries=$(jq .zones.soak.entries <<< "$st")
    [ "$calls" = 0 ] && soak_ok "$1: no attest call during the load (cached identities stayed cached)" \
        || soak_fail "$1: $calls attest calls during the load"
    [ "$entries" -ge "$k" ] && soak_ok "$1: zone entries $entries (>= $k)" \
        || soak_fail "$1: zone entries $entries, below $k"
    local nre
    nre=$(grep -c '(replaced)$' "$work/out/$1.reloads" || true)
    if [ "$nre" = "$reloads" ] && ! grep -q 'failed' "$work/out/$1.reloads"; then
        soak_ok "$1: $reloads reloads, new workers each time"
    else
        soak_fail "$1: reloads: $(tr '\n' ';' < "$work/out/$1.reloads")"
    fi
    for _ in $(seq 100); do
        old=$(soak_all_children | grep -c 'shutting down' || true)
        [ "$old" = 0 ] && break
        sleep 0.1
    done
    [ "$old" = 0 ] && soak_ok "$1: old workers gone; workers now $(soak_workers)" \
        || soak_fail "$1: $old old workers still shutting down: $(soak_all_children | tr '\n' ';')"
    echo "  $1: zone $(jq -c '.zones.soak | {entries, hits, misses, evictions, calls: .calls.attest_ok}' <<< "$st")"
    emu DELETE /calls > /dev/null
}

emu DELETE /calls > /dev/null

echo "== A. wrk: ${secs}s, 2 threads, $conns connections, $k cached identities, $reloads reloads"
reload_loop > "$work/out/A.reloads" &
rl=$!
SOAK_IDENTITIES=$k SOAK_PREFIX=$prefix wrk -t2 -c"$conns" -d"${secs}s" --timeout 5s \
    -s "$soak_root/bench/soak/cached.lua" "$base/app" > "$work/out/wrk.out" 2>&1 || true
wait "$rl"
sed 's/^/  | /' "$work/out/wrk.out"
sed 's/^/  /' "$work/out/A.reloads"
reqs=$(awk '/requests in/ {print $1}' "$work/out/wrk.out")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/out/wrk.out"); non2xx=${non2xx:-0}
read -r e_conn e_read e_write e_time < <(awk '/Socket errors/ {
    gsub(",", ""); print $4, $6, $8, $10 }' "$work/out/wrk.out")
e_conn=${e_conn:-0}; e_read=${e_read:-0}; e_write=${e_write:-0}; e_time=${e_time:-0}
hits=$(grep -oE 'HIT=[0-9]+' "$work/out/wrk.out" | cut -d= -f2); hits=${hits:-0}
ok200=$(grep -oE ' 200=[0-9]+' "$work/out/wrk.out" | cut -d= -f2); ok200=${ok200:-0}
echo "  wrk: $reqs requests, $ok200 answered 200, $hits HIT; non-2xx $non2xx; socket errors: connect $e_conn, read $e_read, write $e_write, timeout $e_time"
[ "$non2xx" = 0 ] && soak_ok "A: non-2xx 0" || soak_fail "A: $non2xx non-2xx answers"
[ "$e_conn" = 0 ] && [ "$e_time" = 0 ] && soak_ok "A: connect errors 0, timeouts 0" \
    || soak_fail "A: connect errors $e_conn, timeouts $e_time"
if [ $((e_read + e_write)) -le $((conns * reloads)) ]; then
    soak_ok "A: read+write errors $((e_read + e_write)) <= $conns connections x $reloads reloads: requests written on keep-alive connections nginx closed at reload (see B, which tells them apart)"
else
    soak_fail "A: read+write errors $((e_read + e_write)), more than one per connection per reload ($((conns * reloads)))"
fi
[ "$hits" = "$ok200" ] && soak_ok "A: every answer a HIT" || soak_fail "A: $hits HIT of $ok200 answers"
after_phase A

echo "== B. load.mjs --retry-idle-close: ${secs}s, $conns in flight, $k cached identities, $reloads reloads"
reload_loop > "$work/out/B.reloads" &
rl=$!
out=$(node "$soak_root/bench/soak/load.mjs" --url "$base/app" --duration "$secs" \
      --max-seconds $((secs + 30)) --concurrency "$conns" --identities "cycle:$k" \
      --prefix "$prefix" --retry-idle-close --timeout-ms 5000)
wait "$rl"
sed 's/^/  /' "$work/out/B.reloads"
echo "  load.mjs: $out"
read -r completed sent ok200 hitsb retried retried_ok terr < <(jq -r '[.completed, .sent,
    (.statuses["200"] // 0), (.cache.HIT // 0), .retried, .retried_ok,
    ([.transport_errors | to_entries[] | select(.key | startswith("retried:") | not) | .value] | add // 0)]
    | @tsv' <<< "$out")
echo "  $sent requests, $completed answered, $ok200 with 200, $hitsb HIT; $retried retried after an idle keep-alive close, $retried_ok of them answered; other transport errors $terr"
[ "$completed" = "$sent" ] && [ "$ok200" = "$sent" ] && [ "$terr" = 0 ] \
    && soak_ok "B: every request answered 200 ($sent), no transport error" \
    || soak_fail "B: $sent sent, $completed answered, $ok200 with 200, transport errors $(jq -c .transport_errors <<< "$out")"
[ "$retried" = "$retried_ok" ] && soak_ok "B: every retry answered ($retried_ok of $retried)" \
    || soak_fail "B: $retried_ok of $retried retries answered"
[ "$hitsb" = "$ok200" ] && soak_ok "B: every answer a HIT" || soak_fail "B: $hitsb HIT of $ok200 answers"
after_phase B

soak_check_log "reload"
echo "  error log by level: $(soak_levels)"
grep -vE '\[notice\]' "$work/logs/error.log" | grep -v 'signal process started' | head -5 | sed 's/^/  | /'

if [ "$soak_failures" -gt 0 ]; then
    echo "soak-reload: $soak_failures check(s) failed"
    exit 1
fi
echo "soak-reload: all checks passed (2 x ${secs}s, 2 x $reloads reloads)"
