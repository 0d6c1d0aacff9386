# shellcheck shell=bash
# Sourced by mailstack.sh (uses its globals: DOMAINS, IP, USERS, PORT, STATE, ...).
# shellcheck disable=SC2153  # globals are assigned in mailstack.sh
# Runs the stack: launch, readiness probes, health, stop.

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

# provider_ready DOMAIN [IP]: every listener of the provider answers on IP (default: its
# loopback address).
provider_ready() {
  local ip=${2:-${IP[$1]}}
  {
    greeting "$ip" "${PORT[smtp]}" 220 && greeting "$ip" "${PORT[submission]}" 220 &&
      accepts "$ip" "${PORT[smtps]}" && greeting "$ip" "${PORT[imap]}" '* OK' &&
      accepts "$ip" "${PORT[imaps]}" && greeting "$ip" "${PORT[pop3]}" '+OK' &&
      accepts "$ip" "${PORT[pop3s]}"
  } 2>/dev/null
}

# provider_up DOMAIN: the provider answers on its loopback address and, when LAB_ON names one,
# on its lab address.
provider_up() {
  provider_ready "$1" || return 1
  [[ -z ${LAB_ON[$1]:-} ]] || provider_ready "$1" "${LAB_ON[$1]}"
}

# lab_present: LAB_ON[domain] = the provider's lab address, for each one that LAB_LINK (the
# NAT lab's root-namespace veth) carries now; empty when the lab is down.
declare -A LAB_ON=()
lab_present() {
  LAB_ON=()
  [[ $LAB_LINK != none && -e /sys/class/net/$LAB_LINK ]] || return 0 # no lab: no fork
  local addrs d
  addrs=$(ip -4 -o addr show dev "$LAB_LINK" 2>/dev/null) || return 0
  for d in "${DOMAINS[@]}"; do
    [[ $addrs == *" inet ${LAB_IP[$d]}/"* ]] && LAB_ON[$d]=${LAB_IP[$d]}
  done
  return 0
}

# lab_recorded: LAB_REC[domain] = the lab address stack.json says the provider listens on.
declare -A LAB_REC=()
lab_recorded() {
  LAB_REC=()
  [[ -s $STATE/stack.json ]] || return 0
  local line d="" re_domain='"domain": "([^"]+)"' re_lab='"labIp": "([^"]+)"'
  while IFS= read -r line; do
    if [[ $line =~ $re_domain ]]; then
      d=${BASH_REMATCH[1]}
    elif [[ -n $d && $line =~ $re_lab ]]; then
      LAB_REC[$d]=${BASH_REMATCH[1]}
    fi
  done <"$STATE/stack.json"
}

# healthy: every daemon's pid runs, every listener answers, descriptions exist, and the stack
# listens on exactly the lab addresses that are up now (the lab came up after the stack, or went
# down under it: not healthy, so `start` restarts it with the right listeners).
healthy() {
  local d
  [[ -s $STATE/stack.json && -s $STATE/passwords.env ]] || return 1
  lab_present
  lab_recorded
  for d in "${DOMAINS[@]}"; do
    provider_paths "$d"
    pid_alive "$PF_PIDFILE" && pid_alive "$DC_PIDFILE" || return 1
    [[ ${LAB_ON[$d]:-} == "${LAB_REC[$d]:-}" ]] || return 1
    provider_up "$d" || return 1
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

# wait_ready: poll every provider (on every address in LAB_ON too) until all greet, or fail
# after START_TIMEOUT seconds.
wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT)) d pending failed
  while :; do
    pending=() failed=()
    for d in "${DOMAINS[@]}"; do
      provider_up "$d" && continue
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
