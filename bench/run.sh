#!/usr/bin/env bash
# `make bench`: every benchmark, each reported as a ratio against a baseline
# measured in the same run. Results land in bench/results/.
set -eu
cd "$(dirname "$0")/.."
status=0
if [ -f bench/mint.sh ]; then
    bash bench/mint.sh || status=1
fi
bash bench/exchange.sh || status=1
bash bench/authz-zone.sh || status=1
exit $status
