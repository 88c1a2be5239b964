#!/usr/bin/env bash
# Installs the real servers that tributary-fileservers starts (Debian 12, as root).
#
#   vsftpd, openssh-server (+ openssh-client, its ssh-keygen/sftp), openssl: from apt.
#   ProFTPD: Debian's FTP servers all conflict (each provides ftp-server), so
#   proftpd-core is fetched with `apt-get download`, its library dependencies
#   are installed with apt, and the package is unpacked with `dpkg-deb -x` into
#   /opt/tributary-fileservers/proftpd (the crate's PROFTPD_EXTRACTED), where
#   nothing else looks for it. Nothing is started or enabled.
#
# Idempotent. Set TRIBUTARY_SKIP_APT_UPDATE=1 if `apt-get update` already ran.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
dest="${TRIBUTARY_PROFTPD_DEST:-/opt/tributary-fileservers/proftpd}"

if [ -z "${TRIBUTARY_SKIP_APT_UPDATE:-}" ]; then
  apt-get update -q
fi
apt-get install -y -q --no-install-recommends vsftpd openssh-server openssh-client
# Present on a new machine already; install if missing, don't upgrade.
apt-get install -y -q --no-install-recommends --no-upgrade openssl

if [ ! -x /usr/sbin/proftpd ] && [ ! -x "$dest/usr/sbin/proftpd" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  chmod 0755 "$work" # apt's _apt user downloads into it
  (cd "$work" && apt-get download -q proftpd-core)
  deb="$(ls "$work"/proftpd-core_*.deb)"
  # Its Depends, without versions or alternatives.
  mapfile -t deps < <(dpkg-deb -f "$deb" Depends | tr ',' '\n' \
    | sed -e 's/([^)]*)//g' -e 's/|.*//' -e 's/[[:space:]]//g' | grep -v '^$')
  apt-get install -y -q --no-install-recommends --no-upgrade "${deps[@]}"
  mkdir -p "$dest"
  dpkg-deb -x "$deb" "$dest"
fi
"$( [ -x /usr/sbin/proftpd ] && echo /usr/sbin/proftpd || echo "$dest/usr/sbin/proftpd")" -v
