#!/usr/bin/env bash
# Redis through Portcullis against a direct mutual-TLS connection, in one run.
#
# Builds its own stack in a temp dir: a cluster (auth + proxy; with REDIS_BENCH_TOPOLOGY=single
# the agent too), its own redis-server on a free loopback port (tls-port, client certificates
# from the db CA, ACL user `bench` whose password the agent reads from a file), a database
# agent process joined over the network tunnel (default topology), a user and `pc db login`.
# Then, for each path, redis-benchmark -t get,set with 8 clients:
#   - 16-deep pipelines (-P 16): requests/s and the ratio (target ≥ 0.6)
#   - no pipelining (-P 1): requests/s and the ratio
#   - CPU (utime+stime) of the cluster and the agent per command, and audit events per command
# In the same run, a reference path (unless REDIS_BENCH_REFERENCE=0; skipped with a note when
# haproxy is not installed): HAProxy in `mode tcp` with `nbthread 2`, terminating mutual TLS 1.3
# on both sides (clients must present a db-CA certificate; Redis's certificate is verified) and
# no auditing, measured with the same redis-benchmark runs, TLS flags and AUTH as the direct
# path. It shows the ceiling any proxy that terminates TLS on both sides reaches here, where
# redis-benchmark, the proxy and Redis share the CPUs.
# Then prints a table (the reference in columns of its own). Exits non-zero when anything
# fails; cleans up after itself.
#
# Usage: bench/redis_bench.sh
# Needs release binaries: cargo build --release --workspace (PORTCULLIS_BIN_DIR or
# CARGO_TARGET_DIR pick them up). Knobs (environment): REDIS_BENCH_N (200000 requests per
# test), REDIS_BENCH_TOPOLOGY (remote | single), REDIS_BENCH_KEEP=1 (keep the temp dir),
# REDIS_BENCH_PERF=1 (perf record the cluster for 4 s of the pipelined proxied run; kept),
# REDIS_BENCH_REFERENCE=0 (no HAProxy path).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
N="${REDIS_BENCH_N:-200000}"
TOPOLOGY="${REDIS_BENCH_TOPOLOGY:-remote}"
case "$TOPOLOGY" in remote|single) ;; *) echo "REDIS_BENCH_TOPOLOGY must be remote or single" >&2; exit 2 ;; esac
bin="${PORTCULLIS_BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/release}"

die() { echo "redis_bench: $*" >&2; exit 1; }
for b in portcullis pcctl pc; do
  [ -x "$bin/$b" ] || die "$bin/$b not found: cargo build --release --workspace first (or set PORTCULLIS_BIN_DIR)"
done
for b in redis-server redis-cli redis-benchmark; do command -v "$b" >/dev/null || die "$b missing (apt-get install redis-server redis-tools)"; done
haproxy_bin=""
if [ "${REDIS_BENCH_REFERENCE:-1}" != 0 ]; then
  haproxy_bin=$(command -v haproxy || true)
  [ -n "$haproxy_bin" ] || echo "redis_bench: note: haproxy not installed (apt-get install haproxy), skipping the HAProxy reference path" >&2
fi

dir=$(mktemp -d /tmp/redis-bench.XXXXXX)
cluster_pid=""; agent_pid=""; redis_pid=""; haproxy_pid=""
keep="${REDIS_BENCH_KEEP:-}"
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ]; then
    echo "redis_bench: FAILED (exit $rc); log tails:" >&2
    for f in "$dir/cluster.log" "$dir/agent/agent.log" "$dir/redis/redis.log" "$dir/haproxy/haproxy.log"; do
      [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
  fi
  for p in "$haproxy_pid" "$agent_pid" "$cluster_pid" "$redis_pid"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  if [ -n "$keep" ]; then echo "redis_bench: kept $dir" >&2; else rm -rf "$dir"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
hz=$(getconf CLK_TCK)

redis_port=$(free_port)
mkdir -p "$dir/redis" "$dir/agent" "$dir/certs"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/agent/bench.pass"
chmod 600 "$dir/agent/bench.pass"
db_entry="    - name: cache
      protocol: redis
      uri: '127.0.0.1:$redis_port'
      description: redis-benchmark target
      passwords: { bench: 'file:$dir/agent/bench.pass' }"

step "cluster ($TOPOLOGY)"
start_cluster "$db_entry"

step "redis-server with TLS from the db CA"
pcctl auth sign --format=db --host=127.0.0.1,localhost --out="$dir/certs/server" >/dev/null
pcctl auth sign --format=db-client --db-user=bench --ttl=12h --out="$dir/certs/direct" >/dev/null
cat >"$dir/redis/redis.conf" <<EOF
bind 127.0.0.1
port 0
tls-port $redis_port
tls-cert-file $dir/certs/server.crt
tls-key-file $dir/certs/server.key
tls-ca-cert-file $dir/certs/server.cas
tls-auth-clients yes
save ""
appendonly no
dir $dir/redis
user default off
user bench on >$(cat "$dir/agent/bench.pass") ~* &* +@all
EOF
redis-server "$dir/redis/redis.conf" >"$dir/redis/redis.log" 2>&1 &
redis_pid=$!
direct=(--tls --cacert "$dir/certs/direct.cas" --cert "$dir/certs/direct.crt" --key "$dir/certs/direct.key" -h 127.0.0.1 -p "$redis_port" --user bench -a "$(cat "$dir/agent/bench.pass")")
for _ in $(seq 50); do
  [ "$(redis-cli "${direct[@]}" --no-auth-warning PING 2>/dev/null)" = PONG ] && break
  sleep 0.1
done
[ "$(redis-cli "${direct[@]}" --no-auth-warning PING)" = PONG ] || die "redis-server did not answer"

start_agent "$db_entry"

step "user and pc db login"
login_user cache --roles=access --db-users=bench
"$bin/pc" db login cache --db-user=bench >/dev/null
cfg=$("$bin/pc" db config cache --format=json)
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$cfg" "$1"; }
proxied=(--tls --cacert "$(field ca)" --cert "$(field cert)" --key "$(field key)" -h "$(field host)" -p "$(field port)")
[ "$(redis-cli "${proxied[@]}" PING)" = PONG ] || die "PING through the proxy failed"
echo "stack up: proxy $proxy_addr, Redis 127.0.0.1:$redis_port" >&2

# --- the reference path: HAProxy, mutual TLS 1.3 on both sides, no audit ------------------------
paths=(direct_args proxy_args)
if [ -n "$haproxy_bin" ]; then
  step "reference: HAProxy (mode tcp, nbthread 2)"
  hp="$dir/haproxy"
  mkdir -p "$hp"
  # Towards the clients: server.crt (SAN 127.0.0.1, localhost) + key, and server.cas (the db
  # CA, which signed the client certificate). Towards Redis: the direct path's certificate and
  # direct.cas, which verifies Redis's certificate (its name checked as localhost).
  cat "$dir/certs/server.crt" "$dir/certs/server.key" >"$hp/server.pem"
  cat "$dir/certs/direct.crt" "$dir/certs/direct.key" >"$hp/direct.pem"
  chmod 600 "$hp"/*.pem
  haproxy_port=$(free_port)
  cat >"$hp/haproxy.cfg" <<EOF
global
  nbthread 2
  maxconn 1000
defaults
  mode tcp
  timeout connect 5s
  timeout client 5m
  timeout server 5m
frontend redis_tls
  bind 127.0.0.1:$haproxy_port ssl crt $hp/server.pem ca-file $dir/certs/server.cas verify required ssl-min-ver TLSv1.3
  default_backend redis
backend redis
  server redis 127.0.0.1:$redis_port ssl verify required verifyhost localhost ca-file $dir/certs/direct.cas crt $hp/direct.pem ssl-min-ver TLSv1.3
EOF
  "$haproxy_bin" -c -q -f "$hp/haproxy.cfg" >"$hp/check.out" 2>&1 || { cat "$hp/check.out" >&2; die "haproxy rejected its configuration"; }
  "$haproxy_bin" -f "$hp/haproxy.cfg" -db </dev/null >"$hp/haproxy.log" 2>&1 &
  haproxy_pid=$!
  # The direct path's TLS flags and AUTH, to HAProxy's port.
  haproxy_args=(--tls --cacert "$dir/certs/direct.cas" --cert "$dir/certs/direct.crt" --key "$dir/certs/direct.key" -h 127.0.0.1 -p "$haproxy_port" --user bench -a "$(cat "$dir/agent/bench.pass")")
  got=""
  for _ in $(seq 50); do
    kill -0 "$haproxy_pid" 2>/dev/null || die "haproxy exited"
    got=$(redis-cli "${haproxy_args[@]}" --no-auth-warning PING 2>/dev/null) && [ "$got" = PONG ] && break
    sleep 0.1
  done
  [ "$got" = PONG ] || die "PING through HAProxy failed"
  paths+=(haproxy_args)
  echo "HAProxy up: 127.0.0.1:$haproxy_port, pid $haproxy_pid" >&2
fi

events() { wc -l <"$dir/cluster/log/events.log"; }
declare -A R
bench() { # label path -> requests/s of GET and SET (sum of both tests / 2)
  local label=$1 path=$2 p=$3
  local -n args=$path
  sleep 1
  local e0 c0 a0 t0 e1 c1 a1
  e0=$(events); c0=$(ticks "$cluster_pid"); a0=$(ticks "$agent_pid")
  local h0=0 h1=0
  [ "$path" = haproxy_args ] && h0=$(ticks "$haproxy_pid")
  local perf_pid=""
  if [ -n "${REDIS_BENCH_PERF:-}" ] && [ "$path" = proxy_args ] && [ "$label" = p16 ]; then
    keep=1
    perf record -F 999 -g -o "$dir/perf.cluster.data" -p "$cluster_pid" -- sleep 4 >/dev/null 2>&1 &
    perf_pid=$!
  fi
  redis-benchmark "${args[@]}" -t get,set -c 8 -P "$p" -n "$N" --csv >"$dir/bench.$label.$path" 2>&1 \
    || { cat "$dir/bench.$label.$path" >&2; die "redis-benchmark $label $path failed"; }
  c1=$(ticks "$cluster_pid"); a1=$(ticks "$agent_pid")
  [ "$path" = haproxy_args ] && h1=$(ticks "$haproxy_pid")
  [ -n "$perf_pid" ] && wait "$perf_pid"
  sleep 2; e1=$(events)
  local get set
  set=$(awk -F'","' '/^"SET"/{print $2}' "$dir/bench.$label.$path")
  get=$(awk -F'","' '/^"GET"/{print $2}' "$dir/bench.$label.$path")
  R[${label}_${path}_set]=$set; R[${label}_${path}_get]=$get
  R[${label}_${path}_cpu]=$(python3 -c "print(f'{(($c1-$c0)+($a1-$a0))/$hz*1e6/(2*$N):.1f}')")
  R[${label}_${path}_events]=$(python3 -c "print(f'{($e1-$e0)/(2*$N):.2f}')")
  R[${label}_${path}_hcpu]=$(python3 -c "print(f'{($h1-$h0)/$hz*1e6/(2*$N):.1f}')")
  echo "   SET $set/s, GET $get/s" >&2
}
direct_args=("${direct[@]}")
proxy_args=("${proxied[@]}")
step "warm-up"
redis-benchmark "${direct_args[@]}" -t get,set -c 8 -P 16 -n 50000 -q >"$dir/warmup.direct" 2>&1 || { cat "$dir/warmup.direct" >&2; die "redis-benchmark failed on the direct path"; }
redis-benchmark "${proxy_args[@]}" -t get,set -c 8 -P 16 -n 50000 -q >"$dir/warmup.proxy" 2>&1 || { cat "$dir/warmup.proxy" >&2; die "redis-benchmark failed through the proxy"; }
if [ -n "$haproxy_pid" ]; then
  redis-benchmark "${haproxy_args[@]}" -t get,set -c 8 -P 16 -n 50000 -q >"$dir/warmup.haproxy" 2>&1 || { cat "$dir/warmup.haproxy" >&2; die "redis-benchmark failed through HAProxy"; }
fi
for run in "p16 16" "p1 1"; do
  read -r label p <<<"$run"
  for path in "${paths[@]}"; do
    step "redis-benchmark -t get,set -c 8 -P $p -n $N, ${path%_args}"
    bench "$label" "$path" "$p"
  done
done
kill -0 "$cluster_pid" && kill -0 "$agent_pid" || die "a Portcullis process died during the run"
[ -z "$haproxy_pid" ] || kill -0 "$haproxy_pid" || die "HAProxy died during the run"

echo
echo "Redis through Portcullis ($TOPOLOGY topology) vs direct mutual TLS, $(nproc) CPUs, $(date -u +%F), $(redis-server --version | awk '{print $3}')"
ref_hdr=""
if [ -n "$haproxy_pid" ]; then ref_hdr=$(printf ' %14s %7s %12s' "HAProxy req/s" "ratio" "HAProxy CPU"); fi
printf '%-34s %14s %14s %7s %14s %12s%s\n' "redis-benchmark, 8 clients" "direct req/s" "proxied req/s" "ratio" "Portcullis CPU" "events/cmd" "$ref_hdr"
for label in p16 p1; do
  for t in set get; do
    d=${R[${label}_direct_args_$t]}; x=${R[${label}_proxy_args_$t]}
    ref=""
    if [ -n "$haproxy_pid" ]; then
      h=${R[${label}_haproxy_args_$t]}
      ref=$(printf ' %14s %7s %9s µs' "$h" "$(python3 -c "print(f'{$h/$d:.2f}')")" "${R[${label}_haproxy_args_hcpu]}")
    fi
    printf '%-34s %14s %14s %7s %11s µs %12s%s\n' "$(echo "$t" | tr a-z A-Z), pipeline ${label#p}" "$d" "$x" \
      "$(python3 -c "print(f'{$x/$d:.2f}')")" "${R[${label}_proxy_args_cpu]}" "${R[${label}_proxy_args_events]}" "$ref"
  done
done
echo "(target: ratio ≥ 0.6 with 16-deep pipelines; CPU is the cluster's plus the agent's per command)"
if [ -n "$haproxy_pid" ]; then
  echo "reference: HAProxy $("$haproxy_bin" -v | awk 'NR == 1 {print $3}'), TLS both sides, no audit (mode tcp, nbthread 2, same run); its ratio is to direct, its CPU per command"
fi
