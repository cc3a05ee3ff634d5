#!/usr/bin/env bash
# Every test of the project, as `make test` runs it (make builds the module
# and installs the Debian packages first):
#
#   1. C unit tests (cmocka)            t/unit
#   2. the emulator's fidelity tests    t/emulator/test (node --test),
#      and the test tools' own tests    t/tools/test
#   3. integration tests with prove     t/*.t, against Debian's nginx and a
#                                       Stytch emulator started here
#
# Exits non-zero if any part fails; always stops what it started.
# PROVE_FILES="t/010-exchange.t ..." runs only those integration tests.
set -u
cd "$(dirname "$0")/.."
root=$PWD

status=0
fail() { echo "FAILED: $*" >&2; status=1; }

for d in t/emulator t/tools; do
    if [ ! -d "$d/node_modules" ] || [ "$d/package-lock.json" -nt "$d/node_modules" ]; then
        (cd "$d" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci in $d"
        touch "$d/node_modules"
    fi
done

if [ -z "${PROVE_FILES:-}" ]; then
    echo "== the module with clang, -Wall -Wextra -Werror"
    make -s clang > /dev/null || fail "clang build"

    echo "== C unit tests"
    make -s -C t/unit run || fail "unit tests"

    echo "== C unit tests under AddressSanitizer and UBSan"
    make -s -C t/unit SANITIZE=1 run || fail "unit tests (sanitizers)"
    make -s -C t/unit clean

    echo "== emulator fidelity (stytch SDK against the emulator)"
    node --test t/emulator/test/*.test.mjs || fail "emulator tests"

    echo "== test tools (the token forge against jose and the emulator)"
    node --test t/tools/test/*.test.mjs || fail "tool tests"
fi

echo "== integration tests (prove)"
export TEST_NGINX_KEYS=$root/build/test-keys
bash scripts/test-keys.sh "$TEST_NGINX_KEYS" || fail "test keys"
export TEST_NGINX_KEY_B64=$(cat "$TEST_NGINX_KEYS/rsa.b64")

emu_dir=$(mktemp -d /tmp/stytch-tat-emu.XXXXXX)
chmod 755 "$emu_dir"
cp t/emulator/config.example.json "$emu_dir/config.json"
node t/emulator/server.mjs --listen localhost:0 --control 127.0.0.1:0 \
    --dir "$emu_dir" --config "$emu_dir/config.json" \
    > "$emu_dir/stdout" 2> "$emu_dir/stderr" &
emu_pid=$!
trap 'kill $emu_pid 2>/dev/null; wait $emu_pid 2>/dev/null; rm -rf "$emu_dir"' EXIT

for _ in $(seq 100); do
    [ -s "$emu_dir/ready" ] && break
    sleep 0.1
done
if [ ! -s "$emu_dir/ready" ]; then
    cat "$emu_dir/stderr" >&2
    fail "the emulator did not start"
    exit 1
fi

ready=$(cat "$emu_dir/ready")
export TEST_NGINX_STYTCH_PORT=$(node -e 'console.log(JSON.parse(process.argv[1]).listen_port)' "$ready")
export TEST_NGINX_STYTCH_CONTROL=$(node -e 'console.log(JSON.parse(process.argv[1]).control_port)' "$ready")
export TEST_NGINX_STYTCH_CA=$emu_dir/ca.pem
export TEST_NGINX_STYTCH_DIR=$emu_dir
chmod 644 "$emu_dir/ca.pem"

prove -I t/lib ${PROVE_ARGS:-} ${PROVE_FILES:-t/} || fail "prove"

if grep -q "secret-test-emulator" "$emu_dir/stderr"; then
    fail "the emulator logged the secret"
fi

exit $status
