#!/usr/bin/env bash
# Install Heavy Optimizer's systemd units with this server's paths (docs/operations.md).
#
#   sudo scripts/install-systemd.sh [--bin PATH] [--share DIR] [--data-dir DIR] [--etc-dir DIR]
#                                   [--user NAME] [--unit-dir DIR] [--root DIR] [--no-user] [--no-enable]
#
# --bin       the heavyopt command (default: the one on PATH, else .venv/bin/heavyopt of this checkout)
# --share     share root (default /srv/heavyopt); --data-dir job database and DuckDB store (/var/lib/heavyopt)
# --etc-dir   heavyopt.ini and heavyopt.env (/etc/heavyopt); --unit-dir (/etc/systemd/system)
# --user      service user, created as a system user unless --no-user (heavyopt)
# --root      install below this directory instead of / (a trial run; implies --no-user --no-enable)
# Existing heavyopt.ini / heavyopt.env are kept; units are replaced. Every unit is checked with
# systemd-analyze verify before systemd is reloaded.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

bin="" share=/srv/heavyopt data=/var/lib/heavyopt etc=/etc/heavyopt user=heavyopt
unit_dir=/etc/systemd/system root="" make_user=1 enable=1
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --share) share="$2"; shift 2 ;;
        --data-dir) data="$2"; shift 2 ;;
        --etc-dir) etc="$2"; shift 2 ;;
        --user) user="$2"; shift 2 ;;
        --unit-dir) unit_dir="$2"; shift 2 ;;
        --root) root="$2"; make_user=0; enable=0; shift 2 ;;
        --no-user) make_user=0; shift ;;
        --no-enable) enable=0; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "install-systemd: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$bin" ]; then
    bin="$(command -v heavyopt || true)"
    [ -n "$bin" ] || bin="$here/.venv/bin/heavyopt"
fi
bin="$(realpath -m "$bin")"
if [ ! -x "$bin" ]; then
    echo "install-systemd: $bin is not executable; install Heavy Optimizer first or give --bin" >&2
    exit 1
fi
for path in "$share" "$data" "$etc" "$unit_dir"; do
    case "$path" in /*) ;; *) echo "install-systemd: $path must be an absolute path" >&2; exit 2 ;; esac
done

if [ "$make_user" = 1 ] && ! id "$user" >/dev/null 2>&1; then
    useradd --system --home-dir "$data" --no-create-home --shell /usr/sbin/nologin --user-group "$user"
    echo "created system user $user"
fi
group="$user"

install -d -m 0755 "$root$unit_dir"
install -d -m 0750 "$root$etc"
install -d -m 0750 "$root$data"
install -d -m 2770 "$root$share"
if [ "$make_user" = 1 ] || id "$user" >/dev/null 2>&1; then
    if [ -z "$root" ]; then
        chown "$user:$group" "$data" "$share"
        chown "root:$group" "$etc"
    fi
fi

if [ ! -e "$root$etc/heavyopt.ini" ]; then
    cat > "$root$etc/heavyopt.ini" <<EOF
; Heavy Optimizer server configuration (docs/config.md). Jobs may override job keys with a sidecar INI.
[QUEUE]
share = $share

[DATABASE]
data_dir = $data

[API]
host = 127.0.0.1
port = 8080
EOF
    chmod 0640 "$root$etc/heavyopt.ini"
fi
if [ ! -e "$root$etc/heavyopt.env" ]; then
    install -m 0640 "$here/systemd/heavyopt.env.example" "$root$etc/heavyopt.env"
fi
[ -n "$root" ] || chgrp "$group" "$etc/heavyopt.ini" "$etc/heavyopt.env" 2>/dev/null || true

render() {
    sed -e "s|/opt/heavyopt/venv/bin/heavyopt|$bin|g" \
        -e "s|/opt/heavyopt/venv/bin/ray|$(dirname "$bin")/ray|g" \
        -e "s|/srv/heavyopt|$share|g" \
        -e "s|/var/lib/heavyopt|$data|g" \
        -e "s|/etc/heavyopt|$etc|g" \
        -e "s|^User=heavyopt|User=$user|" \
        -e "s|^Group=heavyopt|Group=$group|" \
        "$here/systemd/$1"
}
units=(heavyopt.service heavyopt-nightly.service heavyopt-nightly.timer)
# A Ray node (COMPUTE.executor = ray) only where Ray is installed beside heavyopt; enabled by hand, on cluster nodes.
[ -x "$(dirname "$bin")/ray" ] && units+=(heavyopt-ray.service)
for unit in "${units[@]}"; do
    render "$unit" > "$root$unit_dir/$unit.new"
    mv "$root$unit_dir/$unit.new" "$root$unit_dir/$unit"
    chmod 0644 "$root$unit_dir/$unit"
done

if command -v systemd-analyze >/dev/null 2>&1; then
    (cd "$root$unit_dir" && systemd-analyze verify "${units[@]/#/$root$unit_dir/}")
else
    echo "install-systemd: systemd-analyze not found; units not verified" >&2
fi
echo "installed ${units[*]} in $root$unit_dir (heavyopt: $bin, share: $share, data: $data, config: $etc)"

if [ "$enable" = 1 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable --now heavyopt.service heavyopt-nightly.timer
        systemctl --no-pager status heavyopt.service | head -n 5 || true
    else
        echo "install-systemd: systemd is not running here; enable later with:" >&2
        echo "  systemctl daemon-reload && systemctl enable --now heavyopt.service heavyopt-nightly.timer" >&2
    fi
fi
