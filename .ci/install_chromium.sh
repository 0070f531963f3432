#!/usr/bin/env bash
# Installs Debian's chromium (for tests/chromium_test.ts) when /usr/bin/chromium is missing.
# Quiet on success; exits 0 when chromium is present afterwards, non-zero otherwise.
set -uo pipefail

if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "install_chromium: not root and no sudo; cannot install chromium" >&2
    exit 1
  fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

if ! $sudo apt-get update -qq >"$log" 2>&1; then
  echo "install_chromium: apt-get update failed:" >&2
  cat "$log" >&2
  exit 1
fi

# The package is "chromium" on Debian; check that apt knows a candidate for it.
candidate=$(apt-cache policy chromium 2>/dev/null | awk '/Candidate:/ { print $2 }')
if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
  echo "install_chromium: apt has no candidate for package 'chromium'" >&2
  exit 1
fi

if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  chromium >"$log" 2>&1; then
  echo "install_chromium: apt-get install chromium ($candidate) failed:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi

if [[ ! -x /usr/bin/chromium ]]; then
  echo "install_chromium: /usr/bin/chromium still missing after install" >&2
  exit 1
fi
exit 0
