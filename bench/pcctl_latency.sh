#!/usr/bin/env bash
# How fast pcctl answers against a local cluster (target: well under 100 ms).
# Starts its own auth in a temp dir on a free port, runs each command N times, prints p50/p99.
# Usage: bench/pcctl_latency.sh [N] [PROFILE]   (PROFILE: release (default) or debug)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-50}"; profile="${2:-release}"
if [ "$profile" = release ]; then cargo build --release -q -p portcullis -p pcctl; fi
bin="target/$profile"
dir=$(mktemp -d); trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
"$bin/portcullis" start --data-dir "$dir/data" --auth-listen 127.0.0.1:0 --log-level warn 2>"$dir/log" &
pid=$!
for _ in $(seq 100); do [ -s "$dir/data/admin/auth_addr" ] && break; sleep 0.1; done
pc="$bin/pcctl -d $dir/data"
$pc users add bench-user --roles=access --db-users=app >/dev/null
measure() {
  local name="$1"; shift
  python3 - "$n" "$name" "$@" <<'PY'
import subprocess, sys, time
n, name, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
samples = []
for _ in range(n):
    t = time.perf_counter(); subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL); samples.append((time.perf_counter() - t) * 1000)
samples.sort()
print(f"{name:<22} p50 {samples[len(samples)//2]:6.1f} ms   p99 {samples[min(len(samples)-1, int(len(samples)*0.99))]:6.1f} ms   (n={n})")
PY
}
echo "pcctl latency, $profile build, local cluster:"
measure "status" $pc status
measure "users ls" $pc users ls
measure "get roles" $pc get roles
measure "tokens ls" $pc tokens ls
measure "auth sign (db)" $pc auth sign --format=db --host=localhost --out="$dir/s" --overwrite
