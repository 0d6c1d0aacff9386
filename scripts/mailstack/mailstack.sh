#!/usr/bin/env bash
# mailstack.sh — a real three-provider mail stack (Postfix + Dovecot) on loopback for
# mailpeer's end-to-end tests and benchmarks. See docs/mailstack.md.
#
#   mailstack.sh install                 install missing Debian packages (no daemons started)
#   mailstack.sh start [STATE_DIR]       start a.test, b.test, host.test (idempotent)
#   mailstack.sh stop [STATE_DIR]        stop every daemon of the stack (idempotent)
#   mailstack.sh status [STATE_DIR]      show what runs
#   mailstack.sh reset-mailboxes [DIR]   empty every user's mailbox
#   mailstack.sh smoke [STATE_DIR]       send alice@a.test -> host@host.test, read by IMAP + POP3
#
# STATE_DIR defaults to $MAILSTACK_DIR, else <repo>/.mailstack. Needs root.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
TEMPLATE_DIR="$SCRIPT_DIR/templates"

# Providers: domain, address, users (login name = full address).
DOMAINS=(a.test b.test host.test)
declare -A IP=([a.test]=127.0.0.11 [b.test]=127.0.0.12 [host.test]=127.0.0.13)
declare -A USERS=([a.test]="alice alice2" [b.test]="bob bob2" [host.test]="host host2")
# Ports, identical on every provider.
declare -A PORT=([smtp]=25 [submission]=587 [smtps]=465 [imap]=143 [imaps]=993 [pop3]=110 [pop3s]=995)

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

# set_state_dir [DIR]: STATE, an absolute path (sockets live below it: keep it short).
set_state_dir() {
  STATE=${1:-${MAILSTACK_DIR:-$REPO_DIR/.mailstack}}
  [[ $STATE == /* ]] || STATE=$PWD/$STATE
  STATE=${STATE%/}
  [[ -d $STATE ]] || mkdir -p "$STATE"
  # Unix socket paths are limited to 107 bytes; the longest is .../host.test/dovecot/run/...
  (( ${#STATE} <= 60 )) || die "state dir path too long for unix sockets (max 60 chars): $STATE"
  CA_DIR=$STATE/ca
  CA_CERT=$CA_DIR/ca.crt
}

# provider_paths DOMAIN: set the per-provider path variables.
provider_paths() {
  local d=$1
  P_DIR=$STATE/$d
  PF_CONF=$P_DIR/postfix/conf
  PF_QUEUE=$P_DIR/postfix/queue
  PF_DATA=$P_DIR/postfix/data
  DOVECOT_CONF=$P_DIR/dovecot/dovecot.conf
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

# ---------------------------------------------------------------------------------------
# generation: users, TLS, configs, stack.json
# ---------------------------------------------------------------------------------------

ensure_mail_user() {
  id "$MAIL_USER" >/dev/null 2>&1 ||
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$MAIL_USER"
  MAIL_UID=$(id -u "$MAIL_USER")
  MAIL_GID=$(id -g "$MAIL_USER")
}

# Test CA (kept across restarts so clients that cached it keep working).
gen_ca() {
  mkdir -p "$CA_DIR"
  [[ -s $CA_CERT && -s $CA_DIR/ca.key ]] && return 0
  log "generating test CA"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$CA_DIR/ca.key" -out "$CA_CERT" -days 3650 -subj "/CN=mailpeer test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  chmod 600 "$CA_DIR/ca.key"
  chmod 644 "$CA_CERT"
}

# Server certificate: SAN DNS:<domain>, DNS:mail.<domain>, IP:<address>. Reused while it is
# newer than the CA (valid 825 days).
gen_server_cert() {
  local d=$1 ip=${IP[$1]}
  [[ -s $TLS_CERT && -s $TLS_KEY && $TLS_CERT -nt $CA_CERT ]] && return 0
  mkdir -p "$P_DIR/tls"
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$TLS_KEY" -out "$P_DIR/tls/server.csr" -subj "/CN=mail.$d" 2>/dev/null
  openssl x509 -req -in "$P_DIR/tls/server.csr" -CA "$CA_CERT" -CAkey "$CA_DIR/ca.key" \
    -CAcreateserial -CAserial "$CA_DIR/ca.srl" -days 825 -sha256 -out "$TLS_CERT" \
    -extfile <(printf '%s\n' \
      "subjectAltName=DNS:$d,DNS:mail.$d,IP:$ip" \
      "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth") 2>/dev/null
  rm -f "$P_DIR/tls/server.csr"
  chmod 600 "$TLS_KEY"
}

# render TEMPLATE OUT: fill @NAME@ placeholders from the current provider's variables.
render() {
  sed -e "s|@DOMAIN@|$DOMAIN|g" -e "s|@IP@|${IP[$DOMAIN]}|g" \
    -e "s|@STATE_DIR@|$STATE|g" -e "s|@PF_CONF@|$PF_CONF|g" \
    -e "s|@PF_QUEUE@|$PF_QUEUE|g" -e "s|@PF_DATA@|$PF_DATA|g" \
    -e "s|@DOVECOT_RUN@|$DOVECOT_RUN|g" -e "s|@DOVECOT_STATE@|$DOVECOT_STATE|g" \
    -e "s|@USERS_FILE@|$USERS_FILE|g" -e "s|@MAIL_DIR@|$MAIL_DIR|g" \
    -e "s|@LOG_DIR@|$LOG_DIR|g" -e "s|@TLS_CERT@|$TLS_CERT|g" -e "s|@TLS_KEY@|$TLS_KEY|g" \
    -e "s|@CA_CERT@|$CA_CERT|g" -e "s|@MAIL_UID@|$MAIL_UID|g" -e "s|@MAIL_GID@|$MAIL_GID|g" \
    "$TEMPLATE_DIR/$1" >"$2"
}

# configure_provider DOMAIN: directories, certificate, users file, Postfix + Dovecot config.
# Reads PASSWORD[user@domain] (set by gen_passwords).
configure_provider() {
  DOMAIN=$1
  provider_paths "$DOMAIN"
  mkdir -p "$PF_CONF" "$PF_QUEUE" "$PF_DATA" "$DOVECOT_RUN" "$DOVECOT_STATE" "$MAIL_DIR" \
    "$LOG_DIR"
  chmod 755 "$STATE" "$P_DIR"
  chown postfix:postfix "$PF_DATA"
  chown "$MAIL_USER:$MAIL_USER" "$MAIL_DIR"
  chmod 700 "$MAIL_DIR"
  gen_server_cert "$DOMAIN"

  # Postfix
  render main.cf "$PF_CONF/main.cf"
  render master.cf "$PF_CONF/master.cf"
  local other u
  : >"$PF_CONF/transport"
  for other in "${DOMAINS[@]}"; do
    [[ $other == "$DOMAIN" ]] || printf '%s smtp:[%s]:25\n' "$other" "${IP[$other]}" >>"$PF_CONF/transport"
  done
  : >"$PF_CONF/vmailbox"
  for u in ${USERS[$DOMAIN]}; do printf '%s@%s OK\n' "$u" "$DOMAIN" >>"$PF_CONF/vmailbox"; done
  printf 'postmaster@%s OK\n' "$DOMAIN" >>"$PF_CONF/vmailbox"

  # Dovecot (passwords in the clear: random per start, also in passwords.env; root-only).
  render dovecot.conf "$DOVECOT_CONF"
  (
    umask 027
    : >"$USERS_FILE"
    for u in ${USERS[$DOMAIN]}; do
      printf '%s@%s:{PLAIN}%s::::::\n' "$u" "$DOMAIN" "${PASSWORD[$u@$DOMAIN]}" >>"$USERS_FILE"
    done
  )
  chgrp dovecot "$USERS_FILE"
}

declare -A PASSWORD=()
gen_passwords() {
  local d u random i=0
  random=$(openssl rand -hex 240)   # one process for all: 24 hex digits (96 bits) each
  for d in "${DOMAINS[@]}"; do
    for u in ${USERS[$d]}; do PASSWORD[$u@$d]=${random:i:24}; i=$((i + 24)); done
  done
}

# passwords.env (shell-sourceable) and stack.json (machine-readable), both mode 0600.
write_descriptions() {
  local d u first_p=1 first_u
  (
    umask 077
    {
      echo "# mailpeer mail stack: generated by mailstack.sh start; passwords change on every start"
      echo "MAILSTACK_DIR=$STATE"
      echo "MAILSTACK_CA_FILE=$CA_CERT"
      for d in "${DOMAINS[@]}"; do
        for u in ${USERS[$d]}; do env_name "$u" "$d"; echo "$ENV_NAME=${PASSWORD[$u@$d]}"; done
      done
    } >"$STATE/passwords.env.tmp"
    {
      printf '{\n  "version": 1,\n  "stateDir": "%s",\n  "caFile": "%s",\n  "providers": [' \
        "$STATE" "$CA_CERT"
      for d in "${DOMAINS[@]}"; do
        provider_paths "$d"
        ((first_p)) || printf ','
        first_p=0
        printf '\n    {\n      "domain": "%s",\n      "ip": "%s",\n      "hostname": "mail.%s",\n' \
          "$d" "${IP[$d]}" "$d"
        printf '      "ports": {"smtp": %s, "submission": %s, "smtps": %s, "imap": %s, "imaps": %s, "pop3": %s, "pop3s": %s},\n' \
          "${PORT[smtp]}" "${PORT[submission]}" "${PORT[smtps]}" "${PORT[imap]}" \
          "${PORT[imaps]}" "${PORT[pop3]}" "${PORT[pop3s]}"
        printf '      "caFile": "%s",\n      "users": [' "$CA_CERT"
        first_u=1
        for u in ${USERS[$d]}; do
          ((first_u)) || printf ','
          first_u=0
          printf '\n        {"address": "%s@%s", "user": "%s@%s", "password": "%s", "maildir": "%s/%s/Maildir"}' \
            "$u" "$d" "$u" "$d" "${PASSWORD[$u@$d]}" "$MAIL_DIR" "$u"
        done
        printf '\n      ]\n    }'
      done
      printf '\n  ]\n}\n'
    } >"$STATE/stack.json.tmp"
  )
  mv -f "$STATE/passwords.env.tmp" "$STATE/passwords.env"
  mv -f "$STATE/stack.json.tmp" "$STATE/stack.json"
}

# ---------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------

# pid_alive FILE: the pid in FILE runs.
# Sets PID. (Postfix pads its pid file with spaces; `read` trims them.)
pid_alive() {
  PID=""
  [[ -s $1 ]] || return 1
  read -r PID <"$1" || [[ -n $PID ]] || return 1
  [[ $PID =~ ^[0-9]+$ ]] || return 1
  # A daemon that exited stays a zombie until this VM's init reaps it: that is not alive.
  local stat
  read -r stat 2>/dev/null <"/proc/$PID/stat" || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# stack_pids: every Postfix/Dovecot process working below the state dir (by cwd; Dovecot's
# login processes are chrooted there). Matches only mail daemons, never e.g. a shell.
stack_pids() {
  local path link pid
  local -A cwd=()
  # One find for all processes (a readlink per process costs ~20 ms on these VMs).
  while read -r path link; do
    pid=${path#/proc/}
    pid=${pid%%/*}
    case $path in
      */cwd) cwd[$pid]=$link ;;
      */exe)
        [[ ${cwd[$pid]:-} == "$STATE"/* ]] || continue
        case $link in
          /usr/lib/postfix/* | /usr/lib/dovecot/* | /usr/sbin/dovecot | /usr/bin/doveadm) echo "$pid" ;;
        esac
        ;;
    esac
  done < <(find /proc/[0-9]*/cwd /proc/[0-9]*/exe -maxdepth 0 -printf '%p %l\n' 2>/dev/null |
    sort -t/ -k3,3n -k4,4)
}

# greeting IP PORT PREFIX: the server on IP:PORT greets with a line starting with PREFIX.
greeting() {
  local fd line
  exec {fd}<>"/dev/tcp/$1/$2" || return 1
  IFS= read -r -t 2 line <&"$fd" || line=""
  exec {fd}>&-
  [[ $line == "$3"* ]]
}

# accepts IP PORT: something accepts TCP connections on IP:PORT (TLS-only ports).
accepts() {
  local fd
  exec {fd}<>"/dev/tcp/$1/$2" || return 1
  exec {fd}>&-
}

# provider_ready DOMAIN: every listener of the provider answers.
provider_ready() {
  local ip=${IP[$1]}
  {
    greeting "$ip" "${PORT[smtp]}" 220 && greeting "$ip" "${PORT[submission]}" 220 &&
      accepts "$ip" "${PORT[smtps]}" && greeting "$ip" "${PORT[imap]}" '* OK' &&
      accepts "$ip" "${PORT[imaps]}" && greeting "$ip" "${PORT[pop3]}" '+OK' &&
      accepts "$ip" "${PORT[pop3s]}"
  } 2>/dev/null
}

# healthy: every daemon's pid runs, every listener answers, descriptions exist.
healthy() {
  local d
  [[ -s $STATE/stack.json && -s $STATE/passwords.env ]] || return 1
  for d in "${DOMAINS[@]}"; do
    provider_paths "$d"
    pid_alive "$PF_PIDFILE" && pid_alive "$DC_PIDFILE" || return 1
    provider_ready "$d" || return 1
  done
}

# show_failure DOMAIN: the logs and config check an operator needs.
show_failure() {
  provider_paths "$1"
  {
    echo "---- $1: postfix -c $PF_CONF check"
    postfix -c "$PF_CONF" check 2>&1 || true
    echo "---- $1: tail $LOG_DIR/postfix-start.log"
    tail -n 20 "$LOG_DIR/postfix-start.log" 2>/dev/null || true
    echo "---- $1: tail $LOG_DIR/postfix.log"
    tail -n 20 "$LOG_DIR/postfix.log" 2>/dev/null || true
    echo "---- $1: tail $LOG_DIR/dovecot.log"
    tail -n 20 "$LOG_DIR/dovecot.log" 2>/dev/null || true
    echo "---- $1: tail $LOG_DIR/dovecot-start.log"
    tail -n 20 "$LOG_DIR/dovecot-start.log" 2>/dev/null || true
  } >&2
}

# launch_provider DOMAIN: start its Postfix and Dovecot in the background, detached from our
# stdio; each launcher leaves its exit code in $LOG_DIR/*.rc for wait_ready.
launch_provider() {
  provider_paths "$1"
  rm -f "$LOG_DIR/postfix-start.rc" "$LOG_DIR/dovecot-start.rc"
  (
    # `postfix check` creates the queue directories (first start only: it takes ~1 s);
    # quick-start then tells postfix-script to skip its slow integrity checks.
    rc=0
    [[ -d $PF_QUEUE/active ]] || postfix -c "$PF_CONF" check || rc=$?
    : >"$PF_QUEUE/quick-start"
    ((rc == 0)) && { setsid postfix -c "$PF_CONF" start || rc=$?; }
    echo "$rc" >"$LOG_DIR/postfix-start.rc"
  ) </dev/null >"$LOG_DIR/postfix-start.log" 2>&1 &
  (
    rc=0
    setsid dovecot -c "$DOVECOT_CONF" || rc=$?
    echo "$rc" >"$LOG_DIR/dovecot-start.rc"
  ) </dev/null >"$LOG_DIR/dovecot-start.log" 2>&1 &
}

# launch_failed DOMAIN: a launcher of the provider exited non-zero.
launch_failed() {
  provider_paths "$1"
  local f
  for f in "$LOG_DIR/postfix-start.rc" "$LOG_DIR/dovecot-start.rc"; do
    [[ -s $f && $(<"$f") != 0 ]] && return 0
  done
  return 1
}

# wait_ready: poll every provider until all greet, or fail after START_TIMEOUT seconds.
wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT)) d pending failed
  while :; do
    pending=() failed=()
    for d in "${DOMAINS[@]}"; do
      provider_ready "$d" && continue
      pending+=("$d")
      launch_failed "$d" && failed+=("$d")
    done
    [[ ${#pending[@]} -eq 0 ]] && return 0
    if [[ ${#failed[@]} -gt 0 ]]; then
      log "daemons failed to start: ${failed[*]}"
      for d in "${failed[@]}"; do show_failure "$d"; done
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "providers not answering after ${START_TIMEOUT}s: ${pending[*]}"
      for d in "${pending[@]}"; do show_failure "$d"; done
      return 1
    fi
    sleep 0.1
  done
}

# stop_all [reap]: TERM each master, wait, then TERM/KILL any leftover stack process. With
# "reap", also wait (at most 3 s) until this VM's init has reaped the exited daemons, so `ps`
# shows no <defunct> stack processes afterwards.
stop_all() {
  local reap=${1:-} d pids i before
  mapfile -t before < <(stack_pids)
  for d in "${DOMAINS[@]}"; do
    provider_paths "$d"
    [[ -d $P_DIR ]] || continue
    pid_alive "$PF_PIDFILE" && kill -TERM "$PID" 2>/dev/null
    pid_alive "$DC_PIDFILE" && kill -TERM "$PID" 2>/dev/null
  done
  for i in $(seq 50); do
    mapfile -t pids < <(stack_pids)
    [[ ${#pids[@]} -eq 0 ]] && break
    ((i == 20)) && kill -TERM "${pids[@]}" 2>/dev/null
    ((i == 40)) && kill -KILL "${pids[@]}" 2>/dev/null
    sleep 0.1
  done
  [[ ${#pids[@]} -eq 0 ]] || die "processes still running after stop: ${pids[*]}"
  [[ $reap == reap ]] || return 0
  for i in $(seq 30); do
    pids=()
    for d in "${before[@]}"; do [[ -e /proc/$d ]] && pids+=("$d"); done
    [[ ${#pids[@]} -eq 0 ]] && return 0
    sleep 0.1
  done
}

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
  if healthy; then
    log "already running ($STATE)"
    return 0
  fi
  # Anything half-running is stopped first: a clean start every time.
  stop_all
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
  log "running: a.test 127.0.0.11, b.test 127.0.0.12, host.test 127.0.0.13 ($STATE/stack.json)"
}

cmd_stop() {
  need_root
  set_state_dir "${1:-}"
  stop_all reap
  log "stopped ($STATE)"
}

cmd_status() {
  set_state_dir "${1:-}"
  local d pf dc ready rc=0
  printf '%-10s %-11s %-16s %-16s %s\n' DOMAIN IP POSTFIX DOVECOT LISTENERS
  for d in "${DOMAINS[@]}"; do
    provider_paths "$d"
    pf=stopped dc=stopped ready=down
    pid_alive "$PF_PIDFILE" && pf="pid $PID"
    pid_alive "$DC_PIDFILE" && dc="pid $PID"
    provider_ready "$d" && ready=ok || rc=1
    printf '%-10s %-11s %-16s %-16s %s\n' "$d" "${IP[$d]}" "$pf" "$dc" "$ready"
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
  python3 "$SCRIPT_DIR/smoke.py" "$STATE/stack.json"
}

usage() {
  sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    install) cmd_install ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    reset-mailboxes) cmd_reset_mailboxes "$@" ;;
    smoke) cmd_smoke "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}
main "$@"
