#!/usr/bin/env bash
# redis.sh — a throwaway Redis (Debian's redis-server) on 127.0.0.1 for mailpeer's shared-store
# tests (src/host/store/redis_store.ts).
#
#   redis.sh install              install the redis-server package when missing (not started)
#   redis.sh start [STATE_DIR]    start redis-server on loopback (idempotent)
#   redis.sh stop [STATE_DIR]     stop it without saving (idempotent)
#   redis.sh status [STATE_DIR]   exit 0 when it answers PING
#
# STATE_DIR defaults to $REDIS_DIR, else <repo>/.redis. The TCP port is $REDIS_PORT, else 6390
# (not 6379, so a system Redis is never touched). Nothing is persisted: no RDB, no AOF. When
# ready, <STATE_DIR>/redis.json holds {"url":"redis://127.0.0.1:N"}, which tests/support/redis.ts
# reads. Readiness is a real PING, not a sleep.
set -euo pipefail
# shellcheck source=../lib/apt_install.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/apt_install.sh"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
HOST=127.0.0.1
PORT=${REDIS_PORT:-6390}
START_TIMEOUT=${REDIS_START_TIMEOUT:-10} # seconds
REDIS_SERVER=/usr/bin/redis-server
REDIS_CLI=/usr/bin/redis-cli

log() { printf 'redis: %s\n' "$*" >&2; }
die() {
  printf 'redis: error: %s\n' "$*" >&2
  exit 1
}
need_root() { [[ $(id -u) == 0 ]] || die "must run as root (apt-get)"; }

set_state_dir() {
  STATE=${1:-${REDIS_DIR:-$REPO_DIR/.redis}}
  mkdir -p "$STATE"
  STATE=$(cd "$STATE" && pwd)
  PIDFILE=$STATE/redis.pid
  LOGFILE=$STATE/redis.log
  JSON=$STATE/redis.json
}

# ---------------------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------------------

cmd_install() {
  need_root
  if deb_installed redis-server; then
    log "redis-server is installed"
    return 0
  fi
  log "installing redis-server"
  # apt must not start Debian's own redis-server (port 6379, persisting to /var/lib/redis).
  apt_install_quiet redis-server
  log "installed"
}

# ---------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------

# pid_alive: the pid in $PIDFILE runs redis-server (not a zombie). Sets PID.
pid_alive() {
  PID=""
  [[ -s $PIDFILE ]] || return 1
  read -r PID <"$PIDFILE" || [[ -n $PID ]] || return 1
  [[ $PID =~ ^[0-9]+$ ]] || return 1
  local stat
  read -r stat 2>/dev/null <"/proc/$PID/stat" || return 1
  [[ $stat == *"(redis-server)"* ]] || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# probe: the server on $HOST:$PORT answers PING with PONG.
probe() {
  [[ $("$REDIS_CLI" -h "$HOST" -p "$PORT" ping 2>/dev/null) == PONG ]]
}

write_json() {
  printf '{"url":"redis://%s:%d"}\n' "$HOST" "$PORT" >"$JSON.tmp"
  mv -f "$JSON.tmp" "$JSON"
}

cmd_start() {
  [[ -x $REDIS_SERVER && -x $REDIS_CLI ]] || die "missing $REDIS_SERVER; run: $0 install"
  set_state_dir "${1:-}"
  if pid_alive && probe; then
    write_json
    log "already running (pid $PID, $HOST:$PORT)"
    return 0
  fi
  stop_server
  rm -f "$JSON"
  local started=$EPOCHREALTIME
  # No configuration file: loopback only, protected mode, nothing saved to disk.
  "$REDIS_SERVER" --bind "$HOST" --port "$PORT" --protected-mode yes \
    --save "" --appendonly no --daemonize yes \
    --pidfile "$PIDFILE" --logfile "$LOGFILE" --dir "$STATE" >/dev/null 2>&1 ||
    die "redis-server did not start; see $LOGFILE"
  local deadline=$((SECONDS + START_TIMEOUT))
  until probe; do
    if ((SECONDS >= deadline)); then
      stop_server
      die "redis-server does not answer PING on $HOST:$PORT after ${START_TIMEOUT}s; see $LOGFILE"
    fi
    # redis-cli fails at once on a refused connection: poll, do not spin.
    sleep 0.01
  done
  write_json
  local ms
  ms=$(((${EPOCHREALTIME/./} - ${started/./}) / 1000))
  pid_alive || true
  log "running on $HOST:$PORT (pid ${PID:-?}, ready in ${ms} ms; $JSON)"
}

stop_server() {
  local i
  if pid_alive; then
    # SHUTDOWN NOSAVE exits at once without writing a dump; fall back to a signal.
    "$REDIS_CLI" -h "$HOST" -p "$PORT" shutdown nosave >/dev/null 2>&1 ||
      kill "$PID" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      pid_alive || break
      # Nothing to probe while a daemon exits: a short poll interval, not a fixed wait.
      sleep 0.05
    done
    if pid_alive; then kill -KILL "$PID" 2>/dev/null || true; fi
  fi
  rm -f "$PIDFILE"
}

cmd_stop() {
  set_state_dir "${1:-}"
  # The port it was started with, unless $REDIS_PORT says otherwise.
  if [[ -z ${REDIS_PORT:-} && -s $JSON && $(<"$JSON") =~ :([0-9]+)\" ]]; then
    PORT=${BASH_REMATCH[1]}
  fi
  stop_server
  rm -f "$JSON"
  log "stopped ($STATE)"
}

cmd_status() {
  set_state_dir "${1:-}"
  if [[ -z ${REDIS_PORT:-} && -s $JSON && $(<"$JSON") =~ :([0-9]+)\" ]]; then
    PORT=${BASH_REMATCH[1]}
  fi
  if pid_alive && probe; then
    log "running (pid $PID, $HOST:$PORT)"
  else
    log "not running"
    return 1
  fi
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start "${2:-}" ;;
  stop) cmd_stop "${2:-}" ;;
  status) cmd_status "${2:-}" ;;
  *)
    sed -n '5,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
