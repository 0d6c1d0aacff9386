#!/usr/bin/env bash
# mailstack.sh — a real three-provider mail stack (Postfix + Dovecot) on loopback for
# mailpeer's end-to-end tests and benchmarks. See docs/mailstack.md.
#
#   mailstack.sh install                 install missing Debian packages (no daemons started)
#   mailstack.sh start [STATE_DIR]       start a.test, b.test, host.test (idempotent)
#   mailstack.sh stop [STATE_DIR]        stop every daemon of the stack (idempotent)
#   mailstack.sh destroy [STATE_DIR]     stop, then remove the state dir
#   mailstack.sh status [STATE_DIR]      show what runs
#   mailstack.sh reset-mailboxes [DIR]   empty every user's mailbox
#   mailstack.sh smoke [STATE_DIR]       send alice@a.test -> host@host.test, read by IMAP + POP3
#
# STATE_DIR defaults to $MAILSTACK_DIR, else <repo>/.mailstack, which is a symlink into /tmp when
# the daemons' users cannot reach the clone (a mode-0700 parent) or its path is too long for
# Unix sockets. Needs root.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
TEMPLATE_DIR="$SCRIPT_DIR/templates"

# Providers: domain, address, users (login name = full address).
DOMAINS=(a.test b.test host.test)
declare -A IP=([a.test]=127.0.0.11 [b.test]=127.0.0.12 [host.test]=127.0.0.13)
# Lab addresses (docs/natlab.md): the NAT lab puts them on its root-namespace veth LAB_LINK.
# A provider also listens on its lab address when that link carries it at start, so terminals
# inside the lab's namespaces (whose 127.0.0.x is their own loopback) reach it.
# MAILSTACK_LAB_LINK=none: ignore the lab (loopback only).
declare -A LAB_IP=([a.test]=198.18.0.251 [b.test]=198.18.0.252 [host.test]=198.18.0.253)
LAB_LINK=${MAILSTACK_LAB_LINK:-mpl-root}
declare -A USERS=([a.test]="alice alice2" [b.test]="bob bob2" [host.test]="host host2")
# Ports, identical on every provider.
declare -A PORT=([smtp]=25 [submission]=587 [smtps]=465 [imap]=143 [imaps]=993 [pop3]=110 [pop3s]=995)
# Where Dovecot's oauth2 passdb asks whether a token is active (RFC 7662); a test listens there
# when it logs in with OAuth2 (tests/mail/oauth2_real_mail_test.ts), nothing otherwise.
OAUTH2_INTROSPECTION=http://127.0.0.1:8794/introspect

PACKAGES=(postfix dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd openssl ca-certificates)
MAIL_USER=mailstack             # system user that owns all Maildirs
START_TIMEOUT=${MAILSTACK_START_TIMEOUT:-30}   # seconds to wait for all greetings

log() { printf 'mailstack: %s\n' "$*" >&2; }
die() { printf 'mailstack: error: %s\n' "$*" >&2; exit 1; }
need_root() { [[ $(id -u) == 0 ]] || die "must run as root (daemons bind privileged ports)"; }

# ---------------------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------------------

missing_packages() {
  local -A ok=()
  local p status
  while read -r p status; do
    [[ $status == "install ok installed" ]] && ok[$p]=1
  done < <(dpkg-query -W -f='${Package} ${Status}\n' "${PACKAGES[@]}" 2>/dev/null)
  for p in "${PACKAGES[@]}"; do [[ -n ${ok[$p]:-} ]] || echo "$p"; done
}

cmd_install() {
  need_root
  local missing
  mapfile -t missing < <(missing_packages)
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "all packages installed"
    return 0
  fi
  log "installing: ${missing[*]}"
  # Keep apt from starting the distribution's own daemons (e.g. Dovecot on *:143):
  # invoke-rc.d asks /usr/sbin/policy-rc.d; exit 101 = "action forbidden". Restore after.
  local policy=/usr/sbin/policy-rc.d backup=""
  if [[ -e $policy ]]; then backup=$(mktemp); cp -p "$policy" "$backup"; fi
  # shellcheck disable=SC2064  # expand now: restore exactly this backup
  trap "restore_policy '$policy' '$backup'" EXIT
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"

  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  restore_policy "$policy" "$backup"
  trap - EXIT
  log "installed"
}

restore_policy() {
  local policy=$1 backup=$2
  if [[ -n $backup ]]; then mv -f "$backup" "$policy"; else rm -f "$policy"; fi
}

# ---------------------------------------------------------------------------------------
# state directory layout
# ---------------------------------------------------------------------------------------

# set_state_dir [DIR]: STATE, the absolute real path of the state dir
# (scripts/lib/state_dir.sh: the daemons run as postfix, dovecot, dovenull and mailstack). An
# explicit DIR (or $MAILSTACK_DIR) is used as given; the default is <repo>/.mailstack, or its
# /tmp fallback.
set_state_dir() {
  resolve_state_dir mailstack mailpeer-stack "${1:-${MAILSTACK_DIR:-}}" MAILSTACK_DIR
  CA_DIR=$STATE/ca
  CA_CERT=$CA_DIR/ca.crt
}

# require_reachable: the daemons' users can enter STATE (checked before a start).
require_reachable() {
  local bad
  if bad=$(unreachable_ancestor "$(dirname "$STATE")"); then
    die "cannot start the mail stack in $STATE: the daemons' users cannot enter $bad (mode $(stat -c '%a' "$bad")); set MAILSTACK_DIR to a path under /tmp, or unset it to use the default"
  fi
}

# provider_paths DOMAIN: set the per-provider path variables.
provider_paths() {
  local d=$1
  P_DIR=$STATE/$d
  PF_CONF=$P_DIR/postfix/conf
  PF_QUEUE=$P_DIR/postfix/queue
  PF_DATA=$P_DIR/postfix/data
  DOVECOT_CONF=$P_DIR/dovecot/dovecot.conf
  OAUTH2_CONF=$P_DIR/dovecot/oauth2.conf.ext
  DOVECOT_RUN=$P_DIR/dovecot/run
  DOVECOT_STATE=$P_DIR/dovecot/state
  USERS_FILE=$P_DIR/dovecot/users
  MAIL_DIR=$P_DIR/mail
  LOG_DIR=$P_DIR/log
  TLS_CERT=$P_DIR/tls/server.crt
  TLS_KEY=$P_DIR/tls/server.key
  PF_PIDFILE=$PF_QUEUE/pid/master.pid
  DC_PIDFILE=$DOVECOT_RUN/master.pid
}

# env_name USER DOMAIN: ENV_NAME=MAILSTACK_PASS_ALICE_A_TEST (no subshell: forks are slow here)
env_name() { ENV_NAME="MAILSTACK_PASS_${1}_${2}"; ENV_NAME=${ENV_NAME^^}; ENV_NAME=${ENV_NAME//[^A-Z0-9_]/_}; }

# shellcheck source=../lib/state_dir.sh
source "$SCRIPT_DIR/../lib/state_dir.sh"
# shellcheck source=lib/config.sh
source "$SCRIPT_DIR/lib/config.sh"
# shellcheck source=lib/process.sh
source "$SCRIPT_DIR/lib/process.sh"

# ---------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------

# Cheap check (no dpkg): the binaries the stack runs.
require_installed() {
  local f
  for f in /usr/sbin/postfix /usr/sbin/dovecot /usr/bin/doveadm /usr/lib/dovecot/imap \
    /usr/lib/dovecot/pop3 /usr/lib/dovecot/lmtp /usr/bin/openssl; do
    [[ -x $f ]] || die "missing $f; run: $0 install"
  done
}

cmd_start() {
  need_root
  require_installed
  set_state_dir "${1:-}"
  require_reachable
  if healthy; then
    log "already running ($STATE)"
    return 0
  fi
  # Anything half-running is stopped first: a clean start every time.
  stop_all
  lab_present # the NAT lab's addresses to listen on too (healthy set it; set it again after stop)
  ensure_mail_user
  gen_ca
  gen_passwords
  local d
  for d in "${DOMAINS[@]}"; do configure_provider "$d"; done
  write_descriptions
  for d in "${DOMAINS[@]}"; do launch_provider "$d"; done
  if ! wait_ready; then
    stop_all
    die "cannot start the mail stack; see the logs above and in $STATE/*/log/"
  fi
  local where=""
  for d in "${DOMAINS[@]}"; do
    where+="${where:+, }$d ${IP[$d]}${LAB_ON[$d]:+ + ${LAB_ON[$d]}}"
  done
  log "running: $where ($STATE/stack.json)"
}

cmd_stop() {
  need_root
  set_state_dir "${1:-}"
  stop_all reap
  log "stopped ($STATE)"
}

# destroy: stop, then remove the state dir (and <repo>/.mailstack when it links there).
cmd_destroy() {
  need_root
  set_state_dir "${1:-}"
  stop_all reap
  remove_state_dir mailstack
  log "stopped and removed ($STATE)"
}

cmd_status() {
  set_state_dir "${1:-}"
  local d pf dc ready lab rc=0
  lab_present
  lab_recorded
  printf '%-10s %-11s %-16s %-16s %-10s %s\n' DOMAIN IP POSTFIX DOVECOT LISTENERS LAB
  for d in "${DOMAINS[@]}"; do
    provider_paths "$d"
    pf=stopped dc=stopped ready=down lab=-
    pid_alive "$PF_PIDFILE" && pf="pid $PID"
    pid_alive "$DC_PIDFILE" && dc="pid $PID"
    provider_ready "$d" && ready=ok || rc=1
    if [[ -n ${LAB_ON[$d]:-} && -z ${LAB_REC[$d]:-} ]]; then
      lab="${LAB_ON[$d]} not bound (lab up after start: run start)" rc=1
    elif [[ -z ${LAB_ON[$d]:-} && -n ${LAB_REC[$d]:-} ]]; then
      lab="${LAB_REC[$d]} gone (lab down: run start)" rc=1
    elif [[ -n ${LAB_ON[$d]:-} ]]; then
      if provider_ready "$d" "${LAB_ON[$d]}"; then lab="${LAB_ON[$d]} ok"; else lab="${LAB_ON[$d]} down" rc=1; fi
    fi
    printf '%-10s %-11s %-16s %-16s %-10s %s\n' "$d" "${IP[$d]}" "$pf" "$dc" "$ready" "$lab"
  done
  printf 'processes: %s\n' "$(stack_pids | wc -l)"
  return $rc
}

# reset-mailboxes: empty every user's mailbox. Running: through doveadm (Dovecot's indexes stay
# consistent; extra folders are deleted). Stopped: remove the Maildirs.
cmd_reset_mailboxes() {
  need_root
  set_state_dir "${1:-}"
  local d
  for d in "${DOMAINS[@]}"; do
    provider_paths "$d"
    if pid_alive "$DC_PIDFILE"; then
      reset_running "$DOVECOT_CONF" &
    else
      find "$MAIL_DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    fi
  done
  wait
  log "mailboxes emptied"
}

reset_running() {
  local conf=$1 user box
  doveadm -c "$conf" mailbox list -A 2>/dev/null | while read -r user box; do
    [[ $box == INBOX ]] || doveadm -c "$conf" mailbox delete -u "$user" -r -s "$box" 2>/dev/null || true
  done
  doveadm -c "$conf" expunge -A mailbox INBOX all
}

cmd_smoke() {
  set_state_dir "${1:-}"
  [[ -s $STATE/stack.json ]] || die "no stack.json in $STATE; run: $0 start"
  command -v python3 >/dev/null || die "the smoke check needs python3 (apt-get install python3)"
  python3 "$SCRIPT_DIR/smoke.py" "$STATE/stack.json"
}

usage() {
  sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    install) cmd_install ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    destroy) cmd_destroy "$@" ;;
    status) cmd_status "$@" ;;
    reset-mailboxes) cmd_reset_mailboxes "$@" ;;
    smoke) cmd_smoke "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}
main "$@"
