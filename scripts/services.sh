#!/usr/bin/env bash
# services.sh - make sure PostgreSQL and RabbitMQ are reachable for jobsd.
#
# Reads DATABASE_URL and AMQP_URL (local-dev defaults below), checks that each
# server answers, and when a *local* one does not, tries to start it: an
# installed Postgres cluster via pg_ctlcluster, or rabbitmq-server -detached.
# As root with apt-get it installs a missing server (Postgres is then set up to
# trust 127.0.0.1/::1 connections and gets a "root" superuser, for dev only).
# Prints one "services: ..." line per step; exits 1 with a reason on failure.
#
# Env: DATABASE_URL, AMQP_URL, SERVICES_SKIP=1 (do nothing),
#      SERVICES_WAIT (seconds to wait for Postgres, default 30),
#      SERVICES_RABBIT_WAIT (seconds for RabbitMQ, default SERVICES_WAIT or 60).
set -euo pipefail

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/jobsd?sslmode=disable}"
AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
PG_WAIT="${SERVICES_WAIT:-30}"
MQ_WAIT="${SERVICES_RABBIT_WAIT:-${SERVICES_WAIT:-60}}"

say() { echo "services: $*"; }
die() { echo "services: $*" >&2; exit 1; }

if [[ "${SERVICES_SKIP:-}" == 1 ]]; then say "skipped (SERVICES_SKIP=1)"; exit 0; fi

# mask_url URL -> URL with any userinfo password replaced by ***
mask_url() { sed -E 's#^([^:/]+://[^:@/]*):.*@#\1:***@#' <<<"$1"; }

# parse_url URL DEFAULT_PORT -> sets HOST, PORT and ADDR ("host:port", "[v6]:port")
parse_url() {
  local rest="${1#*://}"
  rest="${rest%%[/?#]*}"          # drop path/query
  rest="${rest##*@}"              # drop userinfo
  if [[ "$rest" == \[* ]]; then   # [::1]:5432
    HOST="${rest#[}"; HOST="${HOST%%]*}"
    PORT="${rest##*]}"; PORT="${PORT#:}"
  elif [[ "$rest" == *:* ]]; then
    HOST="${rest%%:*}"; PORT="${rest##*:}"
  else
    HOST="$rest"; PORT=""
  fi
  HOST="${HOST:-127.0.0.1}"; PORT="${PORT:-$2}"
  [[ "$PORT" =~ ^[0-9]+$ ]] || die "invalid port '$PORT' in $(mask_url "$1")"
  if [[ "$HOST" == *:* ]]; then ADDR="[$HOST]:$PORT"; else ADDR="$HOST:$PORT"; fi
}

is_local() { [[ "$1" == 127.0.0.1 || "$1" == localhost || "$1" == ::1 ]]; }
tcp_up() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
pg_up() {
  if command -v pg_isready >/dev/null; then pg_isready -q -h "$1" -p "$2" -t 2
  else tcp_up "$1" "$2"; fi
}
mq_up() {
  tcp_up "$1" "$2" || return 1
  if command -v rabbitmq-diagnostics >/dev/null; then
    timeout 10 rabbitmq-diagnostics -q ping >/dev/null 2>&1
  fi
}
# wait_for CHECKFN HOST PORT SECONDS -> 0 once CHECKFN succeeds, 1 on timeout
wait_for() {
  local deadline=$((SECONDS + $4))
  while ((SECONDS < deadline)); do
    "$1" "$2" "$3" && return 0
    sleep 1
  done
  "$1" "$2" "$3"
}
can_install() { [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; }
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y "$@" >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && apt-get install -y "$@" >/dev/null 2>&1; }
}
pg_cluster_version() { # newest installed cluster version, empty if none
  local d v=""
  for d in /etc/postgresql/*/main; do [[ -d "$d" ]] && v="$(basename "$(dirname "$d")")"; done
  echo "$v"
}

# ---- PostgreSQL -------------------------------------------------------------
parse_url "$DATABASE_URL" 5432; PG_HOST="$HOST"; PG_PORT="$PORT"; PG_ADDR="$ADDR"
say "checking postgres at $PG_ADDR ($(mask_url "$DATABASE_URL"))"
if pg_up "$PG_HOST" "$PG_PORT"; then
  say "postgres at $PG_ADDR is up"
else
  is_local "$PG_HOST" || die "postgres is not reachable at remote $PG_ADDR; start it there or fix DATABASE_URL"
  ver="$(pg_cluster_version)"
  if [[ -n "$ver" ]]; then
    say "starting postgres cluster $ver/main (pg_ctlcluster)"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>&1 | sed 's/^/services:   /' || true
  elif can_install; then
    say "installing postgresql with apt-get"
    apt_install postgresql || die "apt-get install postgresql failed"
    ver="$(pg_cluster_version)"
    [[ -n "$ver" ]] || die "postgresql installed but no cluster found in /etc/postgresql"
    hba="/etc/postgresql/$ver/main/pg_hba.conf"
    { printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n'; cat "$hba"; } >"$hba.new"
    chown --reference="$hba" "$hba.new"; chmod --reference="$hba" "$hba.new"; mv "$hba.new" "$hba"
    say "made 127.0.0.1 and ::1 connections trusted in $hba (local dev only)"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start >/dev/null 2>&1 ||
      pg_ctlcluster --skip-systemctl-redirect "$ver" main reload >/dev/null 2>&1 || true
  else
    die "postgres is not reachable at $PG_ADDR and cannot be started here: install PostgreSQL (apt-get install postgresql) or set DATABASE_URL"
  fi
  say "waiting up to ${PG_WAIT}s for postgres at $PG_ADDR"
  wait_for pg_up "$PG_HOST" "$PG_PORT" "$PG_WAIT" ||
    die "postgres still not reachable at $PG_ADDR after ${PG_WAIT}s (is the cluster configured for that port? check DATABASE_URL)"
  say "postgres at $PG_ADDR is up"
  if [[ -n "${hba:-}" ]]; then
    out="$(su postgres -c "createuser -s root" 2>&1)" ||
      [[ "$out" == *"already exists"* ]] || die "createuser -s root failed: $out"
    say "created postgres superuser role 'root'"
  fi
fi

# ---- RabbitMQ ---------------------------------------------------------------
parse_url "$AMQP_URL" 5672; MQ_HOST="$HOST"; MQ_PORT="$PORT"; MQ_ADDR="$ADDR"
say "checking rabbitmq at $MQ_ADDR ($(mask_url "$AMQP_URL"))"
if tcp_up "$MQ_HOST" "$MQ_PORT"; then
  say "rabbitmq at $MQ_ADDR is up"
else
  is_local "$MQ_HOST" || die "rabbitmq is not reachable at remote $MQ_ADDR; start it there or fix AMQP_URL"
  if ! command -v rabbitmq-server >/dev/null; then
    can_install || die "rabbitmq is not reachable at $MQ_ADDR and cannot be started here: install RabbitMQ (apt-get install rabbitmq-server) or set AMQP_URL"
    say "installing rabbitmq-server with apt-get"
    apt_install rabbitmq-server || die "apt-get install rabbitmq-server failed"
  fi
  # The package may have auto-started it; only launch if the port is still closed.
  if ! tcp_up "$MQ_HOST" "$MQ_PORT"; then
    say "starting rabbitmq-server -detached"
    rabbitmq-server -detached >/dev/null 2>&1 || true
  fi
  say "waiting up to ${MQ_WAIT}s for rabbitmq at $MQ_ADDR"
  if ! wait_for mq_up "$MQ_HOST" "$MQ_PORT" "$MQ_WAIT"; then
    tcp_up "$MQ_HOST" "$MQ_PORT" || die "rabbitmq still not reachable at $MQ_ADDR after ${MQ_WAIT}s (check AMQP_URL and the rabbitmq logs)"
    say "rabbitmq port is open but rabbitmq-diagnostics ping failed (erlang cookie?); continuing"
  fi
  say "rabbitmq at $MQ_ADDR is up"
fi

say "ready"
