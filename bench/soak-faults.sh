#!/usr/bin/env bash
# Soak: every fault mode of the Stytch emulator, SOAK_REQUESTS (1000)
# requests each at SOAK_CONCURRENCY (50) in flight, every request a new
# identity (the cache never hides the exchange), through a location with the
# exchange and a cache; the internal location's timeouts are 1 s.
#
# Checks, for every mode: exactly SOAK_REQUESTS answers, none lost; every
# status one of those README "Statuses" gives for that mode. Over the run:
# no "exited on signal", [alert], [emerg] or [crit] in the error log; each
# worker's open descriptors and private memory (VmRSS less the shared zone)
# after the run within SOAK_FD_MARGIN (10) descriptors and SOAK_RSS_MARGIN_KB
# (2048) of their level after a warm-up that went through every mode once;
# never more attest calls than requests (a token is sent once).
#
# Loopback only; every load run is bounded in count and in time.
# Usage: bash bench/soak-faults.sh   (SOAK_ROUNDS=N repeats the full pass)
set -eu
. "$(dirname "$0")/soak/lib.sh"
n=${SOAK_REQUESTS:-1000}
conc=${SOAK_CONCURRENCY:-50}
rounds=${SOAK_ROUNDS:-1}
fd_margin=${SOAK_FD_MARGIN:-10}
rss_margin=${SOAK_RSS_MARGIN_KB:-2048}
attest=/v1/sessions/attest

soak_setup faults
soak_start_emulator
soak_start_nginx "${SOAK_ZONE:-1m}" ""

# name | fault (JSON, empty: none) | statuses README gives for it
modes=(
    "happy||200"
    "latency-200ms|{\"mode\":\"latency\",\"latency_ms\":200}|200"
    "latency-1500ms|{\"mode\":\"latency\",\"latency_ms\":1500}|504"
    "status-500|{\"mode\":\"status\",\"status\":500}|502"
    "status-503|{\"mode\":\"status\",\"status\":503}|502"
    "status-401|{\"mode\":\"status\",\"status\":401}|500"
    "status-400|{\"mode\":\"status\",\"status\":400,\"error_type\":\"invalid_trusted_auth_token\"}|403"
    "status-404-profile|{\"mode\":\"status\",\"status\":404,\"error_type\":\"trusted_token_profile_not_found\"}|500"
    "rate_limit|{\"mode\":\"rate_limit\",\"retry_after\":7}|503"
    "malformed_json|{\"mode\":\"malformed_json\"}|502"
    "truncated|{\"mode\":\"truncated\"}|502"
    # 504 too: the emulator spends its one thread padding and serializing
    # 1 MB answers, and with 50 in flight some TLS handshakes or answers
    # start past the 1 s timeouts (the README's timeout row)
    "oversized|{\"mode\":\"oversized\"}|502,504"
    "reset_before_headers|{\"mode\":\"reset_before_headers\"}|502"
    "reset_after_headers|{\"mode\":\"reset_after_headers\"}|502"
    "stall|{\"mode\":\"stall\"}|504"
)

# run_mode SPEC COUNT: one mode, prints a result line, checks it when COUNT=$n
run_mode() {
    local name fault allowed count=$2 out t0 calls bad uncached
    IFS='|' read -r name fault allowed <<< "$1"
    emu DELETE /faults > /dev/null
    emu DELETE /calls > /dev/null
    if [ -n "$fault" ]; then
        emu POST /faults "$(jq -c --arg p "$attest" '. + {path: $p}' <<< "$fault")" > /dev/null
    fi
    soak_mark_log
    t0=$(date +%s.%N)
    out=$(node "$soak_root/bench/soak/load.mjs" --url "$base/app" --total "$count" \
          --concurrency "$conc" --identities distinct --prefix "$name-$RANDOM$RANDOM" \
          --max-seconds 120)
    emu DELETE /faults > /dev/null
    calls=$(emu_attests)
    echo "$out" > "$work/out/$name.json"
    uncached=$(soak_log_since_mark | grep -c 'served uncached' || true)
    printf '  %-22s %5s answers in %6ss  statuses %-22s errors %-58s attest calls %5s  uncached %s\n' \
        "$name" "$(jq .completed <<< "$out")" "$(jq .seconds <<< "$out")" \
        "$(jq -c .statuses <<< "$out")" "$(jq -c '.errors_by_tag' <<< "$out")" "$calls" "$uncached"
    # nginx never passes a POST to Stytch twice, nor does the module
    [ "$calls" -le "$count" ] || soak_fail "$name: $calls attest calls for $count requests"
    [ "$count" = "$n" ] || return 0
    [ "$(jq .completed <<< "$out")" = "$count" ] \
        || soak_fail "$name: $(jq .completed <<< "$out") answers of $count, transport errors $(jq -c .transport_errors <<< "$out")"
    bad=$(jq -r --arg ok "$allowed" '.statuses | keys[] | select(. as $s | ($ok | split(",") | index($s)) | not)' <<< "$out")
    [ -z "$bad" ] || soak_fail "$name: statuses $(jq -c .statuses <<< "$out"), README allows $allowed"
    if [ "$name" = rate_limit ]; then
        [ "$(jq -r '.retry_after["7"] // 0' <<< "$out")" = "$count" ] \
            || soak_fail "rate_limit: Retry-After 7 on $(jq -c .retry_after <<< "$out") answers, not all $count"
    fi
    bad=$(soak_log_since_mark | grep -E 'exited on signal|\[alert\]|\[emerg\]|\[crit\]' | head -3 || true)
    [ -z "$bad" ] || soak_fail "$name: error log: $bad"
}

measure() {
    # one line per worker: pid fds rss anon shmem (kB)
    local w
    for w in $(soak_workers); do echo "$w $(soak_proc "$w")"; done
}

echo "== warm-up: $n happy-path requests, then 100 of every mode"
run_mode "${modes[0]}" "$n"
for m in "${modes[@]}"; do run_mode "$m" 100; done
soak_settle
measure > "$work/out/base"
echo "  after warm-up (pid fds VmRSS RssAnon RssShmem, kB):"
sed 's/^/    /' "$work/out/base"

t_start=$(date +%s)
for r in $(seq "$rounds"); do
    echo "== round $r of $rounds: $n requests per mode, $conc in flight, a new identity each"
    for m in "${modes[@]}"; do run_mode "$m" "$n"; done
    if [ "$r" -lt "$rounds" ]; then
        soak_settle
        echo "  after round $r (pid fds VmRSS RssAnon RssShmem, kB): $(measure | tr '\n' ';')"
    fi
done
t_total=$(( $(date +%s) - t_start ))
soak_settle
measure > "$work/out/end"
echo "  after the run, ${t_total}s (pid fds VmRSS RssAnon RssShmem, kB):"
sed 's/^/    /' "$work/out/end"

echo "== checks"
if [ "$(awk '{print $1}' "$work/out/base" | tr '\n' ' ')" != "$(awk '{print $1}' "$work/out/end" | tr '\n' ' ')" ]; then
    soak_fail "the workers changed during the run: $(awk '{print $1}' "$work/out/base" | tr '\n' ' ') -> $(awk '{print $1}' "$work/out/end" | tr '\n' ' ')"
fi
while read -r pid fds rss anon shm; do
    read -r _ fds1 rss1 anon1 shm1 < <(grep "^$pid " "$work/out/end" || echo "$pid 0 0 0 0")
    dfd=$((fds1 - fds)); dpriv=$(( (rss1 - shm1) - (rss - shm) ))
    line="worker $pid: fds $fds -> $fds1 ($dfd), VmRSS $rss -> $rss1 kB, private (VmRSS-RssShmem) $((rss - shm)) -> $((rss1 - shm1)) kB (${dpriv} kB), RssShmem $shm -> $shm1 kB"
    if [ "$dfd" -gt "$fd_margin" ] || [ "$dpriv" -gt "$rss_margin" ]; then
        soak_fail "$line (margins +$fd_margin fds, +$rss_margin kB)"
    else
        soak_ok "$line"
    fi
done < "$work/out/base"
soak_check_log "faults"
echo "  error log by level: $(soak_levels)"
echo "  zone: $(soak_status | jq -c '.zones.soak | {entries, evictions, uncached, misses, hits, waits, calls}')"
echo "  emulator: $(emu GET /state | jq -c '{users, sessions}'), VmRSS $(emu_rss_kb) kB"

if [ "$soak_failures" -gt 0 ]; then
    echo "soak-faults: $soak_failures check(s) failed"
    exit 1
fi
echo "soak-faults: all checks passed (${#modes[@]} modes x $n requests x $rounds round(s), ${t_total}s)"
