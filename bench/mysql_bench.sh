#!/usr/bin/env bash
# MariaDB through Portcullis against a direct mutual-TLS connection, in one run.
#
# Builds its own stack in a temp dir: a cluster (auth + proxy; with MYSQL_BENCH_TOPOLOGY=single
# the agent too), its own MariaDB on a free loopback port with a certificate from the db CA
# (account `bench` REQUIRE SUBJECT '/CN=bench'), a database agent process joined over the
# network tunnel (default topology), a user and `pc db login`. Then, on both paths:
#   - sysbench oltp_point_select, 8 threads: transactions/s and the ratio (target ≥ 0.75)
#   - sysbench oltp_read_only, 8 threads
#   - connection set-up: the mariadb CLI connecting and running SELECT 1, p50 over N runs
#     (process start-up is the same on both paths and cancels out in the difference)
#   - CPU (utime+stime) of the cluster and the agent per transaction
# and prints a table. Exits non-zero when anything fails; cleans up after itself.
#
# Usage: bench/mysql_bench.sh          (run as root: MariaDB runs as `mysql` via runuser)
# Needs release binaries: cargo build --release --workspace (PORTCULLIS_BIN_DIR or
# CARGO_TARGET_DIR pick them up). Knobs (environment): MYSQL_BENCH_T (20, seconds per sysbench
# run), MYSQL_BENCH_CONN_N (50), MYSQL_BENCH_TOPOLOGY (remote | single), MYSQL_BENCH_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
T="${MYSQL_BENCH_T:-20}"
CONN_N="${MYSQL_BENCH_CONN_N:-50}"
TOPOLOGY="${MYSQL_BENCH_TOPOLOGY:-remote}"
case "$TOPOLOGY" in remote|single) ;; *) echo "MYSQL_BENCH_TOPOLOGY must be remote or single" >&2; exit 2 ;; esac
bin="${PORTCULLIS_BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/release}"

die() { echo "mysql_bench: $*" >&2; exit 1; }
for b in portcullis pcctl pc; do
  [ -x "$bin/$b" ] || die "$bin/$b not found: cargo build --release --workspace first (or set PORTCULLIS_BIN_DIR)"
done
for b in mariadbd mariadb-install-db mariadb sysbench; do command -v "$b" >/dev/null || die "$b missing (apt-get install mariadb-server mariadb-client sysbench)"; done
[ "$(id -u)" = 0 ] || die "run as root (MariaDB is started as the mysql user with runuser)"

dir=$(mktemp -d /tmp/mysql-bench.XXXXXX)
chmod 755 "$dir"
cluster_pid=""; agent_pid=""; db_pid=""
keep="${MYSQL_BENCH_KEEP:-}"
cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ]; then
    echo "mysql_bench: FAILED (exit $rc); log tails:" >&2
    for f in "$dir/cluster.log" "$dir/agent/agent.log" "$dir/db/error.log"; do
      [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
  fi
  for p in "$agent_pid" "$cluster_pid" "$db_pid"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  if [ -n "$keep" ]; then echo "mysql_bench: kept $dir" >&2; else rm -rf "$dir"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
hz=$(getconf CLK_TCK)

db_port=$(free_port)
mkdir -p "$dir/db" "$dir/agent" "$dir/certs" "$dir/direct" "$dir/proxy" "$dir/home"
db_entry="    - name: shop
      protocol: mysql
      uri: '127.0.0.1:$db_port'
      description: sysbench target"

step "cluster ($TOPOLOGY)"
start_cluster "$db_entry"

step "MariaDB with TLS from the db CA"
pcctl auth sign --format=db --host=127.0.0.1,localhost --out="$dir/certs/server" >/dev/null
pcctl auth sign --format=db-client --db-user=bench --ttl=12h --out="$dir/certs/direct" >/dev/null
cp "$dir/certs/server.crt" "$dir/certs/server.key" "$dir/certs/server.cas" "$dir/db/"
chown -R mysql:mysql "$dir/db"
chmod 600 "$dir/db/server.key"
runuser -u mysql -- mariadb-install-db --no-defaults --datadir="$dir/db/data" --skip-test-db \
  --auth-root-authentication-method=socket >"$dir/db/install.log" 2>&1 || { cat "$dir/db/install.log" >&2; die "mariadb-install-db failed"; }
runuser -u mysql -- mariadbd --no-defaults --datadir="$dir/db/data" --socket="$dir/db/mysqld.sock" \
  --port="$db_port" --bind-address=127.0.0.1 --pid-file="$dir/db/mysqld.pid" --log-error="$dir/db/error.log" \
  --ssl-ca="$dir/db/server.cas" --ssl-cert="$dir/db/server.crt" --ssl-key="$dir/db/server.key" \
  --max-connections=500 --innodb-flush-log-at-trx-commit=0 --skip-log-bin &
db_pid=$!
for _ in $(seq 100); do
  mariadb -S "$dir/db/mysqld.sock" -u root -e 'select 1' >/dev/null 2>&1 && break
  sleep 0.2
done
mariadb -S "$dir/db/mysqld.sock" -u root -e "CREATE USER 'bench'@'%' REQUIRE SUBJECT '/CN=bench'; CREATE DATABASE sbtest; GRANT ALL ON sbtest.* TO 'bench'@'%';"

start_agent "$db_entry"

step "user and pc db login"
login_user shop --roles=access --db-users=bench --db-names=sbtest
"$bin/pc" db login shop --db-user=bench --db-name=sbtest >/dev/null
cfg=$("$bin/pc" db config shop --format=json)
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$cfg" "$1"; }
proxy_port=$(field port)
# sysbench takes its TLS files from its working directory.
cp "$(field key)" "$dir/proxy/client-key.pem"; cp "$(field cert)" "$dir/proxy/client-cert.pem"; cp "$(field ca)" "$dir/proxy/cacert.pem"
cp "$dir/certs/direct.key" "$dir/direct/client-key.pem"; cp "$dir/certs/direct.crt" "$dir/direct/client-cert.pem"; cp "$dir/certs/direct.cas" "$dir/direct/cacert.pem"
port_of() { if [ "$1" = direct ]; then echo "$db_port"; else echo "$proxy_port"; fi; }
sb() { # path test args...
  local path=$1 test=$2; shift 2
  (cd "$dir/$path" && sysbench "$test" --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$(port_of "$path")" \
    --mysql-user=bench --mysql-db=sbtest --mysql-ssl=on --tables=4 --table-size=10000 "$@")
}
for path in direct proxy; do
  out=$(cd "$dir/$path" && mariadb --host=127.0.0.1 --port="$(port_of "$path")" --user=bench --database=sbtest \
    --ssl-ca=cacert.pem --ssl-cert=client-cert.pem --ssl-key=client-key.pem -N -e 'select current_user()') \
    || die "$path path: mariadb failed"
  [ "$out" = "bench@%" ] || die "$path path: got $out"
done
echo "stack up: proxy $proxy_addr (MySQL port $proxy_port), MariaDB 127.0.0.1:$db_port" >&2
step "sysbench prepare"
sb direct oltp_read_only prepare >"$dir/prepare.log" 2>&1 || { cat "$dir/prepare.log" >&2; die "sysbench prepare failed"; }

events() { wc -l <"$dir/cluster/log/events.log"; }
declare -A R
step "warm-up"
for path in direct proxy; do sb "$path" oltp_point_select --threads=8 --time=5 run >/dev/null 2>&1 || die "warm-up on $path failed"; done
for test in oltp_point_select oltp_read_only; do
  for path in direct proxy; do
    step "sysbench $test, 8 threads, ${T}s, $path"
    sleep 2
    c0=$(ticks "$cluster_pid"); a0=$(ticks "$agent_pid")
    sb "$path" "$test" --threads=8 --time="$T" run >"$dir/sb.$test.$path" 2>&1 || { cat "$dir/sb.$test.$path" >&2; die "sysbench $test on $path failed"; }
    c1=$(ticks "$cluster_pid"); a1=$(ticks "$agent_pid")
    tps=$(awk '/transactions:/{gsub(/\(/,"",$3); print $3; exit}' "$dir/sb.$test.$path")
    n=$(awk '/transactions:/{print $2; exit}' "$dir/sb.$test.$path")
    R[${test}_$path]=$tps
    R[${test}_${path}_cpu]=$(python3 -c "print(f'{(($c1-$c0)+($a1-$a0))/$hz*1e6/max($n,1):.1f}')")
    echo "   $tps transactions/s" >&2
  done
done

for path in direct proxy; do
  step "connection set-up, $CONN_N mariadb runs (connect, TLS, login, SELECT 1), $path"
  times=()
  for _ in $(seq "$CONN_N"); do
    t0=$(date +%s%N)
    (cd "$dir/$path" && mariadb --host=127.0.0.1 --port="$(port_of "$path")" --user=bench --database=sbtest \
      --ssl-ca=cacert.pem --ssl-cert=client-cert.pem --ssl-key=client-key.pem -N -e 'select 1' >/dev/null)
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
  done
  R[conn_$path]=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "   p50 ${R[conn_$path]} µs" >&2
done
kill -0 "$cluster_pid" && kill -0 "$agent_pid" || die "a Portcullis process died during the run"

echo
echo "MariaDB $(mariadbd --version | awk '{print $3}') through Portcullis ($TOPOLOGY topology) vs direct mutual TLS, $(nproc) CPUs, $(date -u +%F)"
printf '%-36s %14s %14s %7s %16s\n' "sysbench, 8 threads" "direct tps" "proxied tps" "ratio" "Portcullis CPU/tx"
for test in oltp_point_select oltp_read_only; do
  d=${R[${test}_direct]}; x=${R[${test}_proxy]}
  printf '%-36s %14s %14s %7s %13s µs\n' "$test" "$d" "$x" "$(python3 -c "print(f'{$x/$d:.2f}')")" "${R[${test}_proxy_cpu]}"
done
printf '%-36s %14s %14s %7s\n' "connect + SELECT 1, p50 (µs)" "${R[conn_direct]}" "${R[conn_proxy]}" "+$(( R[conn_proxy] - R[conn_direct] ))"
echo "(targets: oltp_point_select ratio ≥ 0.75; connection set-up added ≤ 3 ms at p50)"
