#!/usr/bin/env bash
# coturn.sh — a STUN and TURN server (Debian's coturn) on 127.0.0.1 for mailpeer's STUN and TURN
# tests.
#
#   coturn.sh install              install the coturn package when missing (daemon not started)
#   coturn.sh start [STATE_DIR]    start turnserver: STUN, and TURN with a new password (idempotent)
#   coturn.sh stop [STATE_DIR]     stop it (idempotent)
#   coturn.sh status [STATE_DIR]   exit 0 when it answers a Binding request and has TURN
#
# STATE_DIR defaults to $COTURN_DIR, else <repo>/.coturn. The UDP port is $COTURN_PORT, else
# 3478. When ready, <STATE_DIR>/stun.json holds {"host":"127.0.0.1","port":N,"turn":{"realm":
# "mailpeer.test","user":"mailpeer","password_file":"<STATE_DIR>/turn_password","relay_ip":
# "127.0.0.1","relay_ports":[MIN,MAX]}}, which tests/terminal/stun_test.ts and
# tests/peer/turn_client_test.ts read. The TURN password is new at every start and kept in the
# state dir, mode 0600 (as is the turnserver.conf naming it: never on a command line). Relay
# ports are $COTURN_MIN_PORT-$COTURN_MAX_PORT (default 51000-51099). Readiness is a real Binding
# request, not a sleep.
set -euo pipefail
# shellcheck source=../lib/apt_install.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/apt_install.sh"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
HOST=127.0.0.1
PORT=${COTURN_PORT:-3478}
REALM=mailpeer.test
TURN_USER=mailpeer
MIN_PORT=${COTURN_MIN_PORT:-51000}
MAX_PORT=${COTURN_MAX_PORT:-51099}
START_TIMEOUT=${COTURN_START_TIMEOUT:-10} # seconds
TURNSERVER=/usr/bin/turnserver
# Debian's python3 for the probe: a pyenv shim on PATH costs ~0.5 s per call.
PYTHON=${COTURN_PYTHON:-/usr/bin/python3}
[[ -x $PYTHON ]] || PYTHON=python3

log() { printf 'coturn: %s\n' "$*" >&2; }
die() {
  printf 'coturn: error: %s\n' "$*" >&2
  exit 1
}
need_root() { [[ $(id -u) == 0 ]] || die "must run as root (apt-get, daemon)"; }

set_state_dir() {
  STATE=${1:-${COTURN_DIR:-$REPO_DIR/.coturn}}
  mkdir -p "$STATE"
  STATE=$(cd "$STATE" && pwd)
  PIDFILE=$STATE/turnserver.pid
  LOGFILE=$STATE/turn.log
  JSON=$STATE/stun.json
  CONF=$STATE/turnserver.conf
  PASS_FILE=$STATE/turn_password
}

# ---------------------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------------------

cmd_install() {
  need_root
  if deb_installed coturn; then
    log "coturn is installed"
    return 0
  fi
  log "installing coturn"
  # apt must not start Debian's own turnserver (on every address, port 3478).
  apt_install_quiet coturn
  log "installed"
}

# ---------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------

# pid_alive: the pid in $PIDFILE runs turnserver (not a zombie). Sets PID.
pid_alive() {
  PID=""
  [[ -s $PIDFILE ]] || return 1
  read -r PID <"$PIDFILE" || [[ -n $PID ]] || return 1
  [[ $PID =~ ^[0-9]+$ ]] || return 1
  local stat
  read -r stat 2>/dev/null <"/proc/$PID/stat" || return 1
  [[ $stat == *"(turnserver)"* ]] || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# probe HOST PORT: a STUN server on HOST:PORT answers a Binding request (RFC 8489) with a
# success response carrying this request's transaction id.
probe() {
  "$PYTHON" - "$1" "$2" <<'EOF'
import os, socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
tid = os.urandom(12)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
try:
    s.sendto(struct.pack("!HHI", 0x0001, 0, 0x2112A442) + tid, (host, port))
    data = s.recv(2048)
except OSError:
    sys.exit(1)
ok = len(data) >= 20 and data[0:2] == b"\x01\x01" and data[8:20] == tid
sys.exit(0 if ok else 1)
EOF
}

write_json() {
  printf '{"host":"%s","port":%d,"turn":{"realm":"%s","user":"%s","password_file":"%s","relay_ip":"%s","relay_ports":[%d,%d]}}\n' \
    "$HOST" "$PORT" "$REALM" "$TURN_USER" "$PASS_FILE" "$HOST" "$MIN_PORT" "$MAX_PORT" >"$JSON.tmp"
  mv -f "$JSON.tmp" "$JSON"
}

# write_conf: a new random TURN password and the turnserver.conf naming it, both mode 0600.
# STUN answers Binding requests without credentials; TURN needs the long-term credentials
# (RFC 8656 §9.2). Loopback only: listening, relay and (allow-loopback-peers) peers.
write_conf() {
  local mask pass
  mask=$(umask)
  umask 077
  od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$PASS_FILE"
  pass=$(<"$PASS_FILE")
  cat >"$CONF" <<EOF
# Written by coturn.sh start; the password is new at every start.
listening-ip=$HOST
relay-ip=$HOST
listening-port=$PORT
min-port=$MIN_PORT
max-port=$MAX_PORT
lt-cred-mech
realm=$REALM
user=$TURN_USER:$pass
allow-loopback-peers
no-multicast-peers
no-tcp-relay
no-cli
no-tls
no-dtls
no-rfc5780
no-stun-backward-compatibility
no-software-attribute
userdb=$STATE/turndb
pidfile=$PIDFILE
log-file=$LOGFILE
simple-log
EOF
  umask "$mask"
}

cmd_start() {
  need_root
  [[ -x $TURNSERVER ]] || die "missing $TURNSERVER; run: $0 install"
  set_state_dir "${1:-}"
  # A server started before TURN was configured (no password file) is restarted with TURN.
  if pid_alive && [[ -s $PASS_FILE && -s $CONF ]] && probe "$HOST" "$PORT"; then
    write_json
    log "already running (pid $PID, $HOST:$PORT)"
    return 0
  fi
  stop_server
  rm -f "$JSON" "$STATE/turndb"
  local started=$EPOCHREALTIME
  write_conf
  # STUN and TURN (UDP relay) on loopback only; no CLI, TLS or DTLS (see write_conf).
  "$TURNSERVER" -c "$CONF" --daemon >/dev/null 2>&1 || die "turnserver did not start; see $LOGFILE"
  local deadline=$((SECONDS + START_TIMEOUT))
  until probe "$HOST" "$PORT"; do
    if ((SECONDS >= deadline)); then
      stop_server
      die "turnserver does not answer on $HOST:$PORT after ${START_TIMEOUT}s; see $LOGFILE"
    fi
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
  need_root
  set_state_dir "${1:-}"
  stop_server
  rm -f "$JSON" "$CONF" "$PASS_FILE"
  log "stopped ($STATE)"
}

cmd_status() {
  set_state_dir "${1:-}"
  # The port it was started with, unless $COTURN_PORT says otherwise.
  if [[ -z ${COTURN_PORT:-} && -s $JSON && $(<"$JSON") =~ \"port\":([0-9]+) ]]; then
    PORT=${BASH_REMATCH[1]}
  fi
  if ! pid_alive || ! probe "$HOST" "$PORT"; then
    log "not running"
    return 1
  fi
  # A server an older coturn.sh started is STUN only: the TURN tests need it restarted.
  if [[ ! -s $PASS_FILE || ! -s $CONF ]]; then
    log "running without TURN (pid $PID, $HOST:$PORT); run: $0 start"
    return 1
  fi
  log "running (pid $PID, $HOST:$PORT, STUN and TURN)"
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start "${2:-}" ;;
  stop) cmd_stop "${2:-}" ;;
  status) cmd_status "${2:-}" ;;
  *)
    sed -n '4,7p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
