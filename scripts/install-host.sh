#!/usr/bin/env bash
# Debian/Ubuntu packages Conveyor and its tests need. Idempotent: installs only what is missing.
set -euo pipefail
PKGS=(docker.io haproxy docker-registry debootstrap socat curl ca-certificates git python3
      python3-venv python3-pip make procps rsync nodejs npm
      docker-compose  # the peer bench/rollout_under_load.py measures against
      openssh-server gnupg)  # the GitOps source tests: an sshd git server, GPG-signed commits
PKGS+=(openssl)  # the email notifier's STARTTLS test makes its certificate
PKGS+=(nagios4-core)  # infrastructure checks (docs/checks.md)
PKGS+=(monitoring-plugins-basic)  # the check_* plugins Nagios runs
PKGS+=(nagios-nrpe-plugin)  # check_nrpe, for remote hosts
PKGS+=(prometheus)  # metrics (docs/metrics.md): Prometheus and promtool
PKGS+=(prometheus-alertmanager)  # Alertmanager and amtool
PKGS+=(prometheus-node-exporter)  # the host's metrics
PKGS+=(chromium)  # the dashboard's browser tests (Selenium drives it headless)
PKGS+=(chromium-driver)  # chromedriver for those tests (no Selenium Manager download)

# A package is not needed when its command is already installed another way
# (a Docker Engine from docker.com, Node.js from NodeSource with its own npm).
declare -A PROVIDES=([docker.io]=dockerd [nodejs]=node [npm]=npm [python3]=python3)
missing=()
for p in "${PKGS[@]}"; do
  cmd=${PROVIDES[$p]:-}
  if [ -n "$cmd" ] && command -v "$cmd" >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then echo "host packages: all present"
else
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
echo "host packages: installing ${missing[*]}"
# No init system here: keep package scripts from trying to start daemons.
[ -x /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d; }
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Nagios's Docker check talks to the daemon's socket: its user needs the docker group (as
# root-equivalent as that group is; without it the check says UNKNOWN and why: docs/checks.md).
if getent group docker >/dev/null && id nagios >/dev/null 2>&1 && ! id -nG nagios | grep -qw docker; then
  if [ "$(id -u)" != 0 ]; then sudo usermod -aG docker nagios; else usermod -aG docker nagios; fi
fi
