#!/usr/bin/env bash
# The multi-core workers figures of issue 19 in one command: on a 16-core box,
# Comet --workers 8 against --workers 1 with the servers on CPUs 0-7 and the
# load generators (and the harness's pushers) on CPUs 8-15.
#
#   bash bench/device_workers.sh [extra bench flags...]
#
# Run from the repository root. The box needs no network: Deno comes from
# .device/deno.xz (git-ignored; make it with
#   xz -9 -T0 -c "$(deno eval 'console.log(Deno.execPath())')" > .device/deno.xz
# ) or, failing that, from PATH, and the harness imports local files only.
# Extra flags are appended to the bench command, and a later flag wins, so a
# 2-core dry run is
#   bash bench/device_workers.sh --server-cpus=0 --gen-cpus=1 --workers-n=2 --quick
# The log and results.json land in $OUT (the device tool's output folder),
# or in bench/out/device/ where OUT is not set.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=${OUT:-$ROOT/bench/out/device}
mkdir -p "$OUT"
LOG=$OUT/device_workers.log
# Whole-run limit, and the point after which the harness starts no further
# run: a pair takes about 70 s, so one started just before the second still
# ends well inside the first and results.json is written.
LIMIT_S=${LIMIT_S:-540}
MAX_RUN_S=${MAX_RUN_S:-400}

_main() {
  echo "== device_workers.sh $(date -u +%FT%TZ)"
  # (a) Deno: unpacked from .device/deno.xz with Python's lzma (xz may be absent).
  if [ -f .device/deno.xz ]; then
    mkdir -p .device/bin
    if [ ! -x .device/bin/deno ] || [ .device/deno.xz -nt .device/bin/deno ]; then
      python3 -c "import lzma,shutil; shutil.copyfileobj(lzma.open('.device/deno.xz'), open('.device/bin/deno','wb'))" ||
        xz -dc .device/deno.xz >.device/bin/deno ||
        { echo "could not unpack .device/deno.xz (python3 lzma and xz both failed)"; return 1; }
      chmod +x .device/bin/deno
    fi
    export PATH="$ROOT/.device/bin:$PATH"
  fi
  command -v deno >/dev/null || { echo "no deno: put one in .device/deno.xz or on PATH"; return 1; }
  # A cache inside the repository: a cold one only transpiles local files,
  # and nothing here asks the network for anything.
  export DENO_DIR=$ROOT/.device/deno_dir DENO_NO_UPDATE_CHECK=1
  echo "deno: $(command -v deno) ($(deno --version | head -1))"
  # (b) The machine and the open-files limit (15,000 idle connections in one server).
  echo "nproc: $(nproc); memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "cpu: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "ulimit -n: $(ulimit -n) (hard $(ulimit -Hn))"
  if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 20000 ]; then
    ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
    echo "ulimit -n raised to: $(ulimit -n)"
  fi
  command -v taskset >/dev/null && echo "taskset: $(command -v taskset)" ||
    echo "taskset: missing (the pinning flags will refuse to start)"
  echo "source: $(git rev-parse --short HEAD 2>/dev/null || echo 'no git')"
  # (c) The run: the plain-Deno floor for memory, then the workers pairs.
  local cmd=(deno task bench --no-micro --phases=baseline-mem,workers --workers-n=8
    --workers-pairs=3 --gens=6 --server-cpus=0-7 --gen-cpus=8-15 --max-run-s="$MAX_RUN_S" "$@")
  echo "run: timeout -k 15 $LIMIT_S ${cmd[*]}"
  rm -f bench/out/results.json
  local start=$SECONDS
  timeout -k 15 "$LIMIT_S" "${cmd[@]}"
  local rc=$?
  echo "== bench exit $rc after $((SECONDS - start)) s"
  # (d) What the tool brings back.
  if [ -f bench/out/results.json ]; then
    cp bench/out/results.json "$OUT/results.json" && echo "copied results.json to $OUT/"
  else
    echo "no bench/out/results.json"
  fi
  return "$rc"
}

_main "$@" 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
