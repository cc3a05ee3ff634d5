#!/bin/sh
# Installs the Debian packages given as arguments that are not installed yet.
# Quiet and quick when everything is there already.
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages:$missing (run as root or install them)" >&2
    exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing \
    > /tmp/apt-ensure.log 2>&1 || { tail -20 /tmp/apt-ensure.log; exit 1; }
# Debian starts the packaged nginx (and Prometheus) on install; the tests
# run their own.
# Only the service this install started is stopped, by its own pid file:
# other nginx masters on the machine (someone's tests) are left alone.
case " $missing " in
*" nginx"*)
    if [ -d /run/systemd/system ]; then
        systemctl disable --now nginx 2>/dev/null
    elif [ -s /run/nginx.pid ]; then
        kill "$(cat /run/nginx.pid)" 2>/dev/null || true
    fi
    ;;
esac
# likewise Prometheus: t/061 runs its own on a free port
case " $missing " in
*" prometheus "*)
    if [ -d /run/systemd/system ]; then
        systemctl disable --now prometheus 2>/dev/null
    elif [ -s /run/prometheus/prometheus.pid ]; then
        kill "$(cat /run/prometheus/prometheus.pid)" 2>/dev/null || true
    fi
    ;;
esac
exit 0
