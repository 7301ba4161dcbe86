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
proxy_service: { enabled: true, listen_addr: '127.0.0.1:0', mysql_listen_addr: '127.0.0.1:0' }
$db_section
CLUSTER
  "$bin/portcullis" start -c "$dir/cluster.yaml" </dev/null >"$dir/cluster.log" 2>&1 &
  cluster_pid=$!
  for _ in $(seq 200); do
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
