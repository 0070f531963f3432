#!/usr/bin/env bash
# Installs Debian's redis-server (for tests/redis_client_test.ts) when it is missing.
# Quiet on success; exits 0 when redis-server is present afterwards, non-zero otherwise.
# Tests start their own redis-server on free ports, so a system instance that the package
# starts on 6379 is stopped and disabled again: nothing should answer there by accident.
set -uo pipefail

if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "install_redis: not root and no sudo; cannot install redis-server" >&2
    exit 1
  fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Whatever was already listening before the install is left alone.
was_running=0
if pgrep -x redis-server >/dev/null 2>&1; then was_running=1; fi

if ! $sudo apt-get update -qq >"$log" 2>&1; then
  echo "install_redis: apt-get update failed:" >&2
  cat "$log" >&2
  exit 1
fi

candidate=$(apt-cache policy redis-server 2>/dev/null | awk '/Candidate:/ { print $2 }')
if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
  echo "install_redis: apt has no candidate for package 'redis-server'" >&2
  exit 1
fi

if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  redis-server >"$log" 2>&1; then
  echo "install_redis: apt-get install redis-server ($candidate) failed:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi

if [[ $was_running -eq 0 ]]; then
  # The package's postinst starts and enables the service where an init system allows it.
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true
  elif command -v service >/dev/null 2>&1; then
    $sudo service redis-server stop >/dev/null 2>&1 || true
  fi
  # Without a working init system the stop above may not reach it; only the packaged
  # instance (run as user redis with the system config) is ended, by its pid.
  for pid in $(pgrep -u redis -x redis-server 2>/dev/null); do
    $sudo kill "$pid" 2>/dev/null || true
  done
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "install_redis: redis-server still missing after install" >&2
  exit 1
fi
exit 0
