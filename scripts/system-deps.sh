#!/usr/bin/env bash
# Debian packages the test suite drives for real: Samba (smbd, smbclient) for the share tests,
# Chromium for the status page, systemd-analyze for the unit files.
# Installed only when missing and when running as root (CI); otherwise those tests skip locally.
set -euo pipefail
packages=(samba smbclient chromium systemd)
missing=()
command -v smbd >/dev/null 2>&1 || [ -x /usr/sbin/smbd ] || missing+=(samba)
command -v smbclient >/dev/null 2>&1 || missing+=(smbclient)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: missing ${missing[*]} (install as root: apt-get install ${packages[*]}); their tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packaged services are not needed: the tests start their own smbd on a private port.
if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now smbd nmbd >/dev/null 2>&1 || true
fi
