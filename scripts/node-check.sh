#!/bin/sh
# Checks that the node on the PATH is at least the version that the
# "engines" field of t/emulator/package.json and t/tools/package.json asks
# for, and says so plainly when it is not (instead of a stack trace from
# deep inside a test).  Debian 12's own nodejs (18.19 or later) suffices; a
# newer node found first on the PATH is used as it is.
cd "$(dirname "$0")/.." || exit 1

if ! command -v node >/dev/null 2>&1; then
    echo "node not found on the PATH (apt-get install nodejs npm)" >&2
    exit 1
fi

# "node": ">=18.19" -> 18.19; the highest of the package.json files
need=$(sed -n 's/^ *"node": *">= *\([0-9][0-9.]*\)" *$/\1/p' \
    t/emulator/package.json t/tools/package.json \
    | sort -t. -k1,1n -k2,2n -k3,3n | tail -n1)
if [ -z "$need" ]; then
    echo "node-check.sh: no \"node\": \">=X.Y\" in the engines of t/emulator or t/tools/package.json" >&2
    exit 1
fi

have=$(node --version 2>/dev/null | sed -n 's/^v\([0-9][0-9.]*\).*/\1/p')

# as_number 18.19.1 -> 18019001
as_number() {
    echo "$1" | awk -F. '{ printf "%d%03d%03d\n", $1, $2, $3 }'
}

if [ -z "$have" ] || [ "$(as_number "$have")" -lt "$(as_number "$need")" ]; then
    echo "Node.js ${have:-of unknown version} at $(command -v node) is too old:" \
         "the emulator and test tools need $need or later." >&2
    echo "Take the older node off the PATH (on Debian 12, make then installs" \
         "Debian's nodejs, which is recent enough) or install a newer one." >&2
    exit 1
fi
