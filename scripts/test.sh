#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# On a fresh Debian machine with Rust it first installs what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real servers and clients the tests drive: PostgreSQL, MariaDB, Redis, OpenSSL.
need_pkgs=()
command -v openssl >/dev/null || need_pkgs+=(openssl)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs+=(postgresql)
command -v psql >/dev/null || need_pkgs+=(postgresql-client)
command -v mariadbd >/dev/null || need_pkgs+=(mariadb-server)
command -v mariadb >/dev/null || need_pkgs+=(mariadb-client)
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
command -v redis-cli >/dev/null || need_pkgs+=(redis-tools)
command -v setpriv >/dev/null || need_pkgs+=(util-linux)
command -v sysbench >/dev/null || need_pkgs+=(sysbench)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "==> installing ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}"
fi

echo "==> format"
cargo fmt --all -- --check
echo "==> lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> build (the end-to-end tests run these binaries)"
cargo build --workspace --locked
echo "==> test"
# Two cores: test binaries run one after another, each with two test threads.
cargo test --workspace --locked -- --test-threads=2
