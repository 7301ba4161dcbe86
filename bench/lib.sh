# Shared by the bench scripts (sourced, not run): a cluster, an agent and a logged-in user in
# a temp dir, and small helpers. The caller defines `die` and sets `bin` (release binaries),
# `dir` (its temp dir) and `TOPOLOGY` (`single`: the agent runs inside the cluster process;
# `remote`: an agent process joins over the tunnel) first.

step() { echo "== $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# CPU ticks (user + system) a process has used.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# start_cluster DATABASES_YAML: auth + proxy on loopback, serving the `databases:` entries
# itself with TOPOLOGY=single; sets cluster_pid and proxy_addr. pcctl() administers it.
# AUDIT_FSYNC sets auth's audit fsync policy (every_batch, the default; interval; never).
start_cluster() {
  local db_section="db_service: { enabled: false }"
  if [ "$TOPOLOGY" = single ]; then
    db_section="db_service:
  enabled: true
  databases:
$1"
  fi
  cat >"$dir/cluster.yaml" <<CLUSTER
version: v1
cluster_name: bench
data_dir: $dir/cluster
log: { level: warn, format: text }
auth_service:
  enabled: true
  listen_addr: 127.0.0.1:0
  authentication: { second_factor: 'off' }
  audit: { fsync: ${AUDIT_FSYNC:-every_batch} }
proxy_service: { enabled: true, listen_addr: '127.0.0.1:0', mysql_listen_addr: '127.0.0.1:0' }
$db_section
CLUSTER
  # PORTCULLIS_WRAP: a command the cluster runs under (valgrind), word-split; START_WAIT: tenths
  # of a second to wait for it to come up.
  # shellcheck disable=SC2086
  ${PORTCULLIS_WRAP:-} "$bin/portcullis" start -c "$dir/cluster.yaml" </dev/null >"$dir/cluster.log" 2>&1 &
  cluster_pid=$!
  for _ in $(seq "${START_WAIT:-200}"); do
    [ -s "$dir/cluster/admin/proxy_addr" ] && [ -s "$dir/cluster/admin/mysql_addr" ] && [ -f "$dir/cluster/admin/identity.pem" ] && break
    kill -0 "$cluster_pid" 2>/dev/null || die "the cluster exited during start-up"
    sleep 0.1
  done
  [ -s "$dir/cluster/admin/proxy_addr" ] || die "the cluster did not write admin/proxy_addr"
  proxy_addr=$(cat "$dir/cluster/admin/proxy_addr")
}
pcctl() { "$bin/pcctl" -d "$dir/cluster" "$@"; }

# start_agent DATABASES_YAML: with TOPOLOGY=remote, an agent process that joins with a fresh
# token and serves the `databases:` entries given; with single, a placeholder process (the
# cluster serves them) so per-process accounting stays uniform. Sets agent_pid.
start_agent() {
  local token_json token pin
  if [ "$TOPOLOGY" = single ]; then
    sleep 100000 &
    agent_pid=$!
    return
  fi
  step "agent"
  token_json=$(pcctl tokens add --type=db --format=json)
  token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' <<<"$token_json")
  pin=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["ca_pin"])' <<<"$token_json")
  mkdir -p "$dir/agent"
  cat >"$dir/agent/agent.yaml" <<AGENT
version: v1
cluster_name: bench
data_dir: $dir/agent/data
log: { level: warn, format: text }
auth_service: { enabled: false }
db_service:
  enabled: true
  proxy_addr: '$proxy_addr'
  join_token: '$token'
  ca_pin: '$pin'
  databases:
$1
AGENT
  "$bin/portcullis" start -c "$dir/agent/agent.yaml" </dev/null >"$dir/agent/agent.log" 2>&1 &
  agent_pid=$!
}

# login_user DATABASE USERS_ADD_ARGS...: user `benchuser` (roles from the arguments), `pc login`
# with HOME in the temp dir, then waits until DATABASE is listed.
login_user() {
  local db=$1 ok=""
  shift
  printf 'bench-password-0123' | pcctl users add benchuser "$@" --password-stdin >/dev/null
  mkdir -p "$dir/home"
  export HOME="$dir/home" PORTCULLIS_HOME="$dir/home/.portcullis"
  printf 'bench-password-0123' | "$bin/pc" login --proxy="$proxy_addr" --user=benchuser --password-stdin --insecure >/dev/null
  for _ in $(seq 100); do
    kill -0 "$agent_pid" 2>/dev/null || die "the agent exited"
    if "$bin/pc" db ls 2>/dev/null | grep -q "$db"; then ok=1; break; fi
    sleep 0.2
  done
  [ -n "$ok" ] || die "$db never appeared in pc db ls"
}

# pg_databases: the `databases:` entries for one PostgreSQL on $pg_port, twice: pg1 (every
# query audited) and pg1-quiet (the same server with audit_queries: false, the audit-off path).
pg_databases() {
  cat <<EOF
    - name: pg1
      protocol: postgres
      uri: '127.0.0.1:$pg_port'
      description: pgbench target
    - name: pg1-quiet
      protocol: postgres
      uri: '127.0.0.1:$pg_port'
      description: pgbench target, queries not audited
      audit_queries: false
EOF
}

# start_postgres MAX_CONNECTIONS: PostgreSQL 15 on $pg_port (chosen by the caller before
# start_cluster, whose database entries name it) with a server certificate from the cluster's
# db CA, database `bench` owned by role `bench`, `pgbench -i -s 10`; durability off so the
# figures measure the paths, not the disk. Needs $pgbin; sets pg_started (for the caller's
# cleanup) and defines pgsu (psql as postgres over the socket).
start_postgres() {
  step "PostgreSQL"
  mkdir -p "$dir/certs" "$dir/pg"
  pcctl auth sign --format=db --host=127.0.0.1,localhost --out="$dir/certs/server" >/dev/null
  pcctl auth sign --format=db-client --db-user=bench --ttl=12h --out="$dir/certs/direct" >/dev/null
  cp "$dir/certs/server.crt" "$dir/certs/server.key" "$dir/certs/server.cas" "$dir/pg/"
  chown -R postgres:postgres "$dir/pg"
  chmod 600 "$dir/pg/server.key"
  runuser -u postgres -- "$pgbin/initdb" -D "$dir/pg/data" -U postgres --auth=trust >"$dir/pg/initdb.log" 2>&1 \
    || { cat "$dir/pg/initdb.log" >&2; die "initdb failed"; }
  cat >>"$dir/pg/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$dir/pg'
ssl = on
ssl_cert_file = '$dir/pg/server.crt'
ssl_key_file = '$dir/pg/server.key'
ssl_ca_file = '$dir/pg/server.cas'
max_connections = $1
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  printf 'local all all trust\nhostssl all all 127.0.0.1/32 cert\n' >"$dir/pg/data/pg_hba.conf"
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w start >/dev/null
  pg_started=1
  pgsu -c "CREATE ROLE bench LOGIN"
  pgsu -c "CREATE DATABASE bench OWNER bench"
  step "pgbench -i -s 10"
  runuser -u postgres -- "$pgbin/pgbench" -i -q -s 10 -h "$dir/pg" -p "$pg_port" -U bench bench >"$dir/pg/init.log" 2>&1 \
    || { cat "$dir/pg/init.log" >&2; die "pgbench -i failed"; }
}
pgsu() { runuser -u postgres -- "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/pg" -p "$pg_port" -U postgres "$@"; }

# pg_env_files AUDITED QUIET: after login_user, `pc db login` to both database entries and
# the environment files $dir/{proxy,quiet,direct}.env that point libpq at each path (direct:
# mutual TLS straight to PostgreSQL); checks that every path answers as bench@bench.
pg_env_files() {
  export PGSERVICEFILE="$dir/home/pg_service.conf"
  local db path got
  for db in "$1:proxy" "$2:quiet"; do
    path=${db#*:}; db=${db%%:*}
    "$bin/pc" db login "$db" --db-user=bench --db-name=bench >/dev/null
    "$bin/pc" db env "$db" | grep '^export ' >"$dir/$path.env"
    echo "export PGSERVICEFILE='$PGSERVICEFILE'" >>"$dir/$path.env"
  done
  cat >"$dir/direct.env" <<EOF
unset PGSERVICE
export PGHOST=127.0.0.1 PGPORT=$pg_port PGUSER=bench PGDATABASE=bench PGSSLMODE=verify-full
export PGSSLROOTCERT='$dir/certs/direct.cas' PGSSLCERT='$dir/certs/direct.crt' PGSSLKEY='$dir/certs/direct.key'
EOF
  for path in direct proxy quiet; do pg_check_path "$path"; done
}

# pg_check_path PATH: psql through $dir/PATH.env answers as bench@bench (retried for 10 s).
pg_check_path() {
  local got=""
  for _ in $(seq 50); do
    got=$( (. "$dir/$1.env"; PGCONNECT_TIMEOUT=10 "$pgbin/psql" -X -A -t -c "select current_user || '@' || current_database()") 2>"$dir/psql.err") && break
    sleep 0.2
  done
  [ "$got" = "bench@bench" ] || { cat "$dir/psql.err" >&2; die "$1 path: psql got '$got'"; }
}

# stop_pg_stack: for a cleanup trap — stops the agent, the cluster and PostgreSQL, whichever
# were started.
stop_pg_stack() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
  [ -n "$cluster_pid" ] && kill "$cluster_pid" 2>/dev/null && wait "$cluster_pid" 2>/dev/null
  [ -n "$pg_started" ] && runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/pg/data" -m immediate -w stop >/dev/null 2>&1
  return 0
}
