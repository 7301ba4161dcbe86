#!/usr/bin/env bash
# Runs the cargo-fuzz targets (opt-in: not part of scripts/test.sh).
# Usage: scripts/fuzz.sh [TARGET] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz needs nightly flags; the stable compiler accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
secs="${2:-60}"
targets="${1:-$(cargo fuzz list)}"
for t in $targets; do
  echo "==> $t for ${secs}s"
  cargo fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=2048
done
