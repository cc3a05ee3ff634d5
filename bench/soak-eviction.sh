#!/usr/bin/env bash
# Soak: SOAK_IDENTITIES (100000) distinct identities through a 1 MB zone
# (stytch_tat_zone zone=soak:1m holds a few hundred sessions), so nearly
# every insert evicts; SOAK_CONCURRENCY (32) in flight, in batches of
# SOAK_BATCH (20000). The emulator keeps every user, session and call in
# memory: after each batch its VmRSS is reported and POST /reset empties it.
#
# Checks: every answer 200 (the config asks for no error status: Stytch
# answers every attest), no transport error; evictions counted in
# stytch_tat_status and equal to what left the zone; one attest per
# identity; no "ngx_slab_alloc() failed", [crit], [alert], [emerg] or
# "exited on signal" in the error log; entries that did not fit are
# counted ("uncached", a warn line each) and still answered 200.
#
# Loopback only; each batch is bounded in count and in time.
# Usage: bash bench/soak-eviction.sh   (SOAK_IDENTITIES=N for another count)
set -eu
. "$(dirname "$0")/soak/lib.sh"
total=${SOAK_IDENTITIES:-100000}
batch=${SOAK_BATCH:-20000}
conc=${SOAK_CONCURRENCY:-32}
zone=${SOAK_ZONE:-1m}
# the zone is under test here, not the timeouts: give a busy emulator time
export SOAK_TIMEOUT=${SOAK_TIMEOUT:-5s}

soak_setup eviction
soak_start_emulator
soak_start_nginx "$zone" ""

zone_line() {
    soak_status | jq -r '.zones.soak | "entries \(.entries), free \(.free) of \(.size) bytes, misses \(.misses), evictions \(.evictions), uncached \(.uncached), attest_ok \(.calls.attest_ok), attest_failed \(.calls.attest_failed)"'
}

echo "== $total distinct identities through a $zone zone, $conc in flight, batches of $batch"
done_n=0; b=0; attests=0; emu_peak=0; non200=0; lost=0
t_start=$(date +%s.%N)
while [ "$done_n" -lt "$total" ]; do
    b=$((b + 1))
    count=$(( total - done_n < batch ? total - done_n : batch ))
    # bounded: at least 100 answers/s or the batch stops by itself
    out=$(node "$soak_root/bench/soak/load.mjs" --url "$base/app" --total "$count" \
          --concurrency "$conc" --identities distinct --prefix "ev$b-$RANDOM" \
          --max-seconds $(( count / 100 + 30 )))
    echo "$out" > "$work/out/batch-$b.json"
    done_n=$((done_n + count))
    calls=$(emu_attests)
    attests=$((attests + calls))
    erss=$(emu_rss_kb)
    [ "$erss" -gt "$emu_peak" ] && emu_peak=$erss
    users=$(emu GET /state | jq .users)
    emu POST /reset > /dev/null
    ok=$(jq -r '.statuses["200"] // 0' <<< "$out")
    non200=$((non200 + $(jq .completed <<< "$out") - ok))
    lost=$((lost + count - $(jq .completed <<< "$out")))
    printf '  batch %d: %d answers in %ss (%s/s), statuses %s, transport errors %s; emulator %d users, VmRSS %d kB (then reset)\n' \
        "$b" "$(jq .completed <<< "$out")" "$(jq .seconds <<< "$out")" "$(jq .rate <<< "$out")" \
        "$(jq -c .statuses <<< "$out")" "$(jq -c .transport_errors <<< "$out")" "$users" "$erss"
    [ "$ok" = "$(jq .completed <<< "$out")" ] \
        || echo "    non-200: $(jq -c .errors_by_tag <<< "$out")"
    echo "    zone: $(zone_line)"
done
secs=$(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
rate=$(awk -v n="$total" -v s="$secs" 'BEGIN { printf "%d", n / s }')
st=$(soak_status)
read -r entries evictions uncached misses attest_ok free size < <(jq -r \
    '.zones.soak | "\(.entries) \(.evictions) \(.uncached) \(.misses) \(.calls.attest_ok) \(.free) \(.size)"' <<< "$st")
echo "  $total identities in ${secs}s: $rate identities/s; emulator VmRSS peak $emu_peak kB"

echo "== checks"
[ "$non200" = 0 ] && soak_ok "every answer 200" || soak_fail "$non200 answers other than 200"
[ "$lost" = 0 ] && soak_ok "no request lost (transport errors 0)" || soak_fail "$lost requests without an answer"
[ "$attests" = "$total" ] && soak_ok "one attest per identity ($attests)" \
    || soak_fail "$attests attest calls for $total identities"
[ "$misses" = "$total" ] && [ "$attest_ok" = "$total" ] && soak_ok "stytch_tat_status: misses $misses, attest_ok $attest_ok" \
    || soak_fail "stytch_tat_status: misses $misses, attest_ok $attest_ok for $total identities"
# every miss inserts a token node, turned into the session node on success
# (a replacement, not an eviction); what is no longer in the zone left it
# by a forced eviction or, expired, by the expiry pass (none in this run:
# sessions last 60 minutes, tokens 5)
if [ "$evictions" -gt 0 ] && [ $((entries + evictions + uncached)) -ge "$total" ]; then
    soak_ok "evictions counted: $evictions; entries $entries; uncached $uncached (entries + evictions + uncached = $((entries + evictions + uncached)), identities $total)"
else
    soak_fail "evictions $evictions, entries $entries, uncached $uncached: do not account for $total identities"
fi
nuncached=$(grep -c 'served uncached' "$work/logs/error.log" || true)
echo "  'served uncached' warn lines: $nuncached (stytch_tat_status uncached: $uncached); zone free $free of $size bytes"
soak_check_log "eviction"
echo "  error log by level: $(soak_levels)"
echo "  workers (pid fds VmRSS RssAnon RssShmem, kB): $(for w in $(soak_workers); do echo -n "$w $(soak_proc "$w"); "; done)"

if [ "$soak_failures" -gt 0 ]; then
    echo "soak-eviction: $soak_failures check(s) failed"
    exit 1
fi
echo "soak-eviction: all checks passed ($total identities, ${secs}s, $rate/s)"
