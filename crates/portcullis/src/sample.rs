//! The commented sample configuration `portcullis configure` prints. Tests check that it
//! parses to exactly the defaults and that it mentions every key.

/// Every key with its default and a one-line explanation.
pub const SAMPLE_CONFIG: &str = r#"# Portcullis configuration. Every key is optional; the values shown are the defaults.
# Start with:  portcullis start -c /etc/portcullis.yaml
version: v1

# The cluster's name. It is written into every certificate at first start and cannot be
# changed afterwards without a new data_dir.
cluster_name: portcullis

# Where cluster state, CA keys and the admin identity live (created with mode 0700).
# Default: /var/lib/portcullis for root, ~/.local/share/portcullis otherwise, or $PORTCULLIS_DATA_DIR.
data_dir: /var/lib/portcullis

log:
  # trace | debug | info | warn | error
  level: info
  # text (for people) | json (one object per line, for log shippers)
  format: text

auth_service:
  # Run the auth service (certificate authorities, users, roles, tokens) in this process.
  enabled: true
  # The auth API (mutual TLS). Keep it private: only proxies, agents and pcctl use it.
  listen_addr: 127.0.0.1:3025
  # Extra DNS names / IPs in auth's TLS certificate, for `pcctl --auth-server` from other hosts.
  # localhost, 127.0.0.1, ::1 and the listen address are always included.
  server_names: []
  authentication:
    # Second factor: on (every user enrols TOTP) | optional | off
    second_factor: on
    # Failed logins in a row before a user is locked out...
    max_login_attempts: 5
    # ...for this long (or until `pcctl users reset NAME`).
    lockout_duration: 20m
    # Login attempts allowed per source address, and per user name, per minute.
    rate_limit_per_ip: 30
    rate_limit_per_user: 10
    # How long invites from `pcctl users add` / `pcctl users reset` stay valid.
    invite_ttl: 24h
    # User certificate lifetime when the user asks for none; roles' max_session_ttl caps it.
    default_session_ttl: 12h
  storage:
    # sqlite: embedded, in data_dir (one auth server).
    type: sqlite
    # The SQLite file; a relative path is under data_dir.
    path: cluster.db
  audit:
    # Where audit events are stored; every sink gets every event, and a batch is acknowledged
    # once all have it. Searches (`pcctl audit search`) read the first. Empty: <data_dir>/log.
    #   file:///var/log/portcullis  JSON lines, one file per UTC day, events.log -> today's
    #                               (a relative path, file://log, is under data_dir)
    #   postgres://audit@db.example.com/audit?sslrootcert=/etc/ca.crt&sslcert=/etc/audit.crt&sslkey=/etc/audit.key
    #                               table portcullis_events, shareable by several auth servers;
    #                               TLS (sslmode=verify-full) by default, or a password in the URL;
    #                               sslmode=disable for loopback only.
    sinks: []
    # When file sinks fsync: every_batch (before acknowledging) | interval | never
    fsync: every_batch
    # With fsync: interval, how often (a crash may lose up to this much).
    fsync_interval: 1s
    # File sinks delete day files older than this, e.g. 8760h (a year); 0s keeps everything.
    retention: 0s

proxy_service:
  # The public endpoint for users and agents (runs in the same process as auth in this version).
  enabled: false
  # One TLS port for the web UI and API, agent tunnels, PostgreSQL, Redis and MongoDB.
  listen_addr: 0.0.0.0:3080
  # The address users and agents reach the proxy by, e.g. proxy.example.com:3080.
  public_addr: null
  # MySQL gets its own port because its server speaks first.
  mysql_listen_addr: 0.0.0.0:3036
  # The server version MySQL clients are greeted with; empty: the version of the MySQL
  # databases the agents serve (MariaDB's 5.5.5- prefix kept), else 8.0.36-Portcullis.
  mysql_server_version: ''

db_service:
  # The database agent: dials out to the proxy and serves the databases below (postgres,
  # mysql and redis in this version). With auth and proxy in the same process and no join_token, it joins by itself.
  enabled: false
  # The proxy the agent dials out to, e.g. proxy.example.com:3080.
  proxy_addr: null
  # A join token from `pcctl tokens add --type=db`, or the path of a file holding it.
  join_token: null
  # The cluster's host CA pin (sha256:...), printed by `pcctl tokens add`.
  ca_pin: null
  # The databases this agent serves, for example:
  #   - name: orders
  #     protocol: postgres             # postgres | mysql | redis | mongodb
  #     uri: 10.0.0.5:5432             # host:port the agent connects to
  #     description: Orders database   # shown by `pc db ls`
  #     tls:
  #       mode: verify-full            # verify-full | verify-ca | insecure
  #       ca_cert_file: null           # default: the cluster's db CA
  #       server_name: null            # default: the host of uri
  #     static_labels: { env: staging }
  #     dynamic_labels:
  #       - name: load
  #         command: [uptime, -p]
  #         period: 1m
  #   - name: cache
  #     protocol: redis
  #     uri: 10.0.0.6:6379             # Redis' tls-port
  #     # Redis 7.0 cannot map a certificate to a user, so the agent logs in with AUTH: where
  #     # it finds each db user's password (file:PATH or env:VAR, never the password itself).
  #     passwords: { app: "file:/etc/portcullis/redis-app.pass" }
  #   - name: shop-mysql
  #     protocol: mysql
  #     uri: 10.0.0.7:3306
  #     mysql:
  #       # LOAD DATA LOCAL INFILE lets the server read any file the client can: off unless needed.
  #       allow_load_data_local: false
  #     # Every query and statement is an audit event (default). false: sessions are still
  #     # recorded (start, end, refusals) but not the commands run in them.
  #     audit_queries: true
  databases: []
  audit:
    # Events wait in an on-disk spool (data_dir/agent/spool) until auth acknowledges them;
    # every query's events are written there before the query reaches the database. Its limit:
    spool_max_bytes: 268435456
    # interval: written before the query is forwarded (survives the agent being killed), on
    # disk within about 300 ms | every_batch: fsynced before the query is forwarded (also
    # survives power loss; a disk flush in every query's path).
    spool_fsync: interval
    # When the spool is full (auth unreachable for long): refuse_sessions (fail closed: new
    # sessions get a FATAL, a live session whose query cannot be recorded is ended) or
    # drop_oldest (delete the oldest undelivered events, with a warning and an audit.gap event).
    when_full: refuse_sessions
    # Longest query text stored; longer text is cut with a marker, db_query_length keeps the
    # original size; it also caps a statement's parameters, together. At most 524288
    # (512 KiB). Passwords in CREATE/ALTER ROLE ... PASSWORD '...' are always masked.
    max_query_bytes: 65536
"#;
