#!/usr/bin/env bash
# imapservers.sh — Courier IMAP and Cyrus IMAP beside the mail stack, on loopback, for the tests
# that run the MailSource conformance suite and FIG. 4 against IMAP servers other than Dovecot.
# See docs/imap-servers.md.
#
#   imapservers.sh install               install what is missing (no daemons started)
#   imapservers.sh start [STATE_DIR]     start Courier (127.0.0.21) and Cyrus (127.0.0.22)
#   imapservers.sh stop [STATE_DIR]      stop both (idempotent)
#   imapservers.sh status [STATE_DIR]    show what runs; exit 1 unless both answer
#
# STATE_DIR defaults to $IMAPSERVERS_DIR, else <repo>/.imapservers (a symlink into /tmp when the
# daemons' users cannot reach the clone). TLS certificates come from the mail stack's test CA
# ($MAILSTACK_DIR, else <repo>/.mailstack; start the stack first). Needs root.
#
# courier-imap and cyrus-imapd both conflict with dovecot-imapd (virtual package imap-server),
# so their .deb files are unpacked with dpkg -x into $PKG_ROOT; everything else they need comes
# from ordinary apt installs.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"

COURIER_IP=127.0.0.21
CYRUS_IP=127.0.0.22
PORT_IMAP=143
PORT_IMAPS=993
# Dependencies installed normally; the conflicting servers unpacked into PKG_ROOT.
PACKAGES=(courier-base courier-authdaemon courier-authlib-userdb gamin libcourier-unicode4
  cyrus-common sasl2-bin db-util openssl)
UNPACKED=(courier-imap cyrus-imapd)
PKG_ROOT=${IMAPSERVERS_PKG_ROOT:-/opt/mailpeer-imapservers}
MAIL_USER=imapsrv
USERS=(host host2)
START_TIMEOUT=${IMAPSERVERS_START_TIMEOUT:-30}

log() { printf 'imapservers: %s\n' "$*" >&2; }
die() { printf 'imapservers: error: %s\n' "$*" >&2; exit 1; }
need_root() { [[ $(id -u) == 0 ]] || die "must run as root (servers bind privileged ports)"; }

# shellcheck source=../lib/state_dir.sh
source "$SCRIPT_DIR/../lib/state_dir.sh"
# shellcheck source=../lib/apt_install.sh
source "$SCRIPT_DIR/../lib/apt_install.sh"

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
  local missing p
  mapfile -t missing < <(missing_packages)
  local unpack=()
  for p in "${UNPACKED[@]}"; do [[ -e $PKG_ROOT/.$p ]] || unpack+=("$p"); done
  if [[ ${#missing[@]} -eq 0 && ${#unpack[@]} -eq 0 ]]; then
    log "all packages installed"
    return 0
  fi
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing: ${missing[*]}"
    # apt starts no daemon of its own (courier-authdaemon, cyrus): apt_install.sh
    apt_install_quiet "${missing[@]}"
  else
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
  fi
  if [[ ${#unpack[@]} -gt 0 ]]; then
    log "unpacking into $PKG_ROOT: ${unpack[*]}"
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -qq "${unpack[@]}" >/dev/null)
    mkdir -p "$PKG_ROOT"
    for p in "${unpack[@]}"; do
      dpkg -x "$tmp/${p}"_*.deb "$PKG_ROOT"
      touch "$PKG_ROOT/.$p"
    done
    rm -rf "$tmp"
  fi
  log "installed"
}

require_installed() {
  local f
  for f in "$PKG_ROOT/usr/bin/imapd" /usr/sbin/couriertcpd /usr/bin/maildirmake \
    /usr/lib/cyrus/bin/master /usr/sbin/authdaemond /usr/sbin/makeuserdb \
    /usr/sbin/userdbpw /usr/bin/openssl /usr/sbin/saslpasswd2; do
    [[ -x $f ]] || die "missing $f; run: $0 install"
  done
}

# ---------------------------------------------------------------------------------------
# state directory, TLS, users
# ---------------------------------------------------------------------------------------

set_state_dir() {
  resolve_state_dir imapservers mailpeer-imapsrv "${1:-${IMAPSERVERS_DIR:-}}" IMAPSERVERS_DIR
  local stack=${MAILSTACK_DIR:-$REPO_DIR/.mailstack}
  CA_DIR=$(readlink -f "$stack")/ca
  CA_CERT=$CA_DIR/ca.crt
  COURIER=$STATE/courier
  CYRUS=$STATE/cyrus
}

# server_cert NAME IP: NAME/tls/server.{crt,key,pem} signed by the mail stack's test CA, SAN
# DNS:mail.NAME.test and IP:IP (reused while newer than the CA).
server_cert() {
  local name=$1 ip=$2 dir=$STATE/$1/tls
  [[ -s $CA_CERT && -s $CA_DIR/ca.key ]] ||
    die "no test CA in $CA_DIR; start the mail stack first (scripts/mailstack/mailstack.sh start) or set MAILSTACK_DIR"
  [[ -s $dir/server.crt && $dir/server.crt -nt $CA_CERT ]] && return 0
  mkdir -p "$dir"
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=mail.$name.test" 2>/dev/null
  openssl x509 -req -in "$dir/server.csr" -CA "$CA_CERT" -CAkey "$CA_DIR/ca.key" \
    -CAcreateserial -CAserial "$dir/ca.srl" -days 825 -sha256 -out "$dir/server.crt" \
    -extfile <(printf '%s\n' "subjectAltName=DNS:mail.$name.test,IP:$ip" \
      "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth") 2>/dev/null
  rm -f "$dir/server.csr"
  cat "$dir/server.key" "$dir/server.crt" >"$dir/server.pem"
  chmod 600 "$dir/server.key" "$dir/server.pem"
}

# passwords: one random password per user, kept in STATE/passwords (reused across starts).
passwords() {
  local u p
  declare -gA PASS=()
  if [[ ! -s $STATE/passwords ]]; then
    for u in "${USERS[@]}"; do printf '%s %s\n' "$u" "$(openssl rand -hex 12)"; done >"$STATE/passwords"
  fi
  chmod 600 "$STATE/passwords"
  while read -r u p; do PASS[$u]=$p; done <"$STATE/passwords"
}

ensure_mail_user() {
  id "$MAIL_USER" >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$MAIL_USER"
}

# ---------------------------------------------------------------------------------------
# Courier IMAP: couriertcpd -> imaplogin (authdaemond, userdb) -> imapd, a Maildir per user
# ---------------------------------------------------------------------------------------

# authdaemond reads /etc/courier/authdaemonrc and /etc/courier/userdb (compiled-in paths):
# this script owns both while it runs the servers (courier-authdaemon is installed for it).
configure_courier() {
  local u uid gid home
  uid=$(id -u "$MAIL_USER") gid=$(id -g "$MAIL_USER")
  mkdir -p "$COURIER/home" "$COURIER/run"
  for u in "${USERS[@]}"; do
    home=$COURIER/home/$u
    [[ -d $home/Maildir/cur ]] || { mkdir -p "$home"; maildirmake "$home/Maildir"; }
    chown -R "$uid:$gid" "$home"
  done
  sed -i -e 's/^authmodulelist=.*/authmodulelist="authuserdb"/' /etc/courier/authdaemonrc
  : >/etc/courier/userdb
  chmod 600 /etc/courier/userdb
  for u in "${USERS[@]}"; do
    printf '%s\tuid=%s|gid=%s|home=%s|mail=%s|imappw=%s\n' "$u" "$uid" "$gid" \
      "$COURIER/home/$u" "$COURIER/home/$u/Maildir" \
      "$(printf '%s\n' "${PASS[$u]}" | userdbpw -md5)" >>/etc/courier/userdb
  done
  makeuserdb
  # The environment imapd runs with: the Debian defaults of /etc/courier/imapd and imapd-ssl,
  # bound to our certificate, and enhanced IDLE (with IMAP_ENHANCEDIDLE=0, Debian's default,
  # Courier reports new mail only at its 60 s IDLE timeout; docs/imap-servers.md).
  cat >"$COURIER/imapd.env" <<ENV
IMAP_CAPABILITY="IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE"
IMAP_CAPABILITY_TLS="IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE AUTH=PLAIN"
IMAP_KEYWORDS=1
IMAP_ACL=1
IMAP_IDLE_TIMEOUT=60
IMAP_MAILBOX_SANITY_CHECK=1
IMAP_UMASK=022
IMAP_USELOCKS=1
IMAP_ENHANCEDIDLE=1
IMAP_TRASHFOLDERNAME=Trash
IMAP_EMPTYTRASH=Trash:7
IMAP_MOVE_EXPUNGE_TO_TRASH=0
IMAP_STARTTLS=YES
IMAP_TLS_REQUIRED=0
COURIERTLS=/usr/bin/couriertls
TLS_CERTFILE=$COURIER/tls/server.pem
TLS_DHPARAMS=/etc/courier/dhparams.pem
TLS_VERIFYPEER=NONE
MAILDIRPATH=Maildir
ENV
}

# courier_tcpd PIDFILE PORT [tls]: one couriertcpd listener, detached.
courier_tcpd() {
  local pidfile=$1 port=$2 tls=${3:-} wrap="" extra=""
  if [[ -n $tls ]]; then wrap="/usr/bin/couriertls -server -tcpd" extra="IMAP_TLS=1; IMAP_STARTTLS=NO;"; fi
  env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin /bin/sh -c "set -a; . '$COURIER/imapd.env'; $extra exec /usr/sbin/couriertcpd -pid='$pidfile' -address=$COURIER_IP -maxprocs=40 -maxperip=40 -nodnslookup -noidentlookup $port $wrap $PKG_ROOT/usr/lib/courier/courier/imaplogin $PKG_ROOT/usr/bin/imapd Maildir" \
    </dev/null >>"$COURIER/run/courier.log" 2>&1 &
}

launch_courier() {
  mkdir -p /run/courier/authdaemon
  chown daemon:daemon /run/courier/authdaemon 2>/dev/null || true
  /usr/sbin/authdaemond start </dev/null >/dev/null 2>&1
  courier_tcpd "$COURIER/run/imapd.pid" "$PORT_IMAP"
  courier_tcpd "$COURIER/run/imapd-ssl.pid" "$PORT_IMAPS" tls
}

# Stops this state dir's listeners, and authdaemond (machine-wide) only when they were running.
stop_courier() {
  local f ran=0
  for f in "$COURIER/run/imapd.pid" "$COURIER/run/imapd-ssl.pid"; do
    if [[ -s $f ]]; then
      ran=1
      /usr/sbin/couriertcpd -pid="$f" -stop >/dev/null 2>&1 || true
      rm -f "$f"
    fi
  done
  if ((ran)); then /usr/sbin/authdaemond stop >/dev/null 2>&1 || true; fi
}

# ---------------------------------------------------------------------------------------
# Cyrus IMAP: master -> imapd, lmtpd (on a Unix socket: no authentication there, as Postfix
# would deliver); users in a sasldb; INBOX created on first login
# ---------------------------------------------------------------------------------------

configure_cyrus() {
  local u
  mkdir -p "$CYRUS/lib/socket" "$CYRUS/lib/proc" "$CYRUS/lib/log" "$CYRUS/lib/db" \
    "$CYRUS/spool" "$CYRUS/run"
  cat >"$CYRUS/imapd.conf" <<CONF
configdirectory: $CYRUS/lib
partition-default: $CYRUS/spool
servername: mail.cyrus.test
admins: cyrus
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: $CYRUS/sasldb2
sasl_mech_list: PLAIN LOGIN
allowplaintext: yes
autocreate_quota: 0
autocreate_post: yes
delete_mode: immediate
idlesocket: $CYRUS/lib/socket/idle
lmtpsocket: $CYRUS/lib/socket/lmtp
notifysocket: $CYRUS/lib/socket/notify
tls_server_cert: $CYRUS/tls/server.crt
tls_server_key: $CYRUS/tls/server.key
syslog_prefix: cyrus-mailpeer
CONF
  cat >"$CYRUS/cyrus.conf" <<CONF
START {
  recover cmd="/usr/lib/cyrus/bin/ctl_cyrusdb -r -C $CYRUS/imapd.conf"
}
SERVICES {
  imap  cmd="$PKG_ROOT/usr/lib/cyrus/bin/imapd -C $CYRUS/imapd.conf" listen="$CYRUS_IP:$PORT_IMAP" prefork=1
  imaps cmd="$PKG_ROOT/usr/lib/cyrus/bin/imapd -s -C $CYRUS/imapd.conf" listen="$CYRUS_IP:$PORT_IMAPS" prefork=1
  lmtp  cmd="/usr/lib/cyrus/bin/lmtpd -C $CYRUS/imapd.conf" listen="$CYRUS/lib/socket/lmtp" prefork=0
}
EVENTS {
  checkpoint cmd="/usr/lib/cyrus/bin/ctl_cyrusdb -c -C $CYRUS/imapd.conf" period=30
}
DAEMON {
  idled cmd="$PKG_ROOT/usr/lib/cyrus/bin/idled -C $CYRUS/imapd.conf"
}
CONF
  rm -f "$CYRUS/sasldb2"
  for u in "${USERS[@]}"; do
    printf '%s' "${PASS[$u]}" | saslpasswd2 -p -c -f "$CYRUS/sasldb2" -u mail.cyrus.test "$u"
  done
  chown cyrus:mail "$CYRUS/sasldb2"
  chmod 640 "$CYRUS/sasldb2"
  chown -R cyrus:mail "$CYRUS/lib" "$CYRUS/spool" "$CYRUS/tls"
  chmod 755 "$CYRUS"
}

launch_cyrus() {
  /usr/lib/cyrus/bin/master -C "$CYRUS/imapd.conf" -M "$CYRUS/cyrus.conf" \
    -p "$CYRUS/run/master.pid" -d </dev/null >>"$CYRUS/run/cyrus.log" 2>&1
}

stop_cyrus() {
  local f=$CYRUS/run/master.pid pid i
  [[ -s $f ]] || return 0
  pid=$(<"$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
}

# ---------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------

# greets IP PORT: the server sends an IMAP greeting within a second.
greets() {
  local line
  { exec 3<>"/dev/tcp/$1/$2"; } 2>/dev/null || return 1
  IFS= read -r -t 1 line <&3 || { exec 3>&-; return 1; }
  exec 3>&-
  [[ $line == "* OK"* ]]
}

running() { greets "$COURIER_IP" "$PORT_IMAP" && greets "$CYRUS_IP" "$PORT_IMAP"; }

write_description() {
  local u users=""
  for u in "${USERS[@]}"; do
    users+="${users:+, }{\"user\": \"$u\", \"password\": \"${PASS[$u]}\"}"
  done
  cat >"$STATE/servers.json" <<JSON
{
  "version": 1,
  "stateDir": "$STATE",
  "caFile": "$CA_CERT",
  "servers": [
    {"name": "courier", "software": "Courier IMAP", "ip": "$COURIER_IP", "hostname": "mail.courier.test",
     "ports": {"imap": $PORT_IMAP, "imaps": $PORT_IMAPS}, "users": [$users]},
    {"name": "cyrus", "software": "Cyrus IMAP", "ip": "$CYRUS_IP", "hostname": "mail.cyrus.test",
     "ports": {"imap": $PORT_IMAP, "imaps": $PORT_IMAPS}, "lmtpSocket": "$CYRUS/lib/socket/lmtp", "users": [$users]}
  ]
}
JSON
  chmod 600 "$STATE/servers.json"
}

cmd_start() {
  need_root
  require_installed
  set_state_dir "${1:-}"
  if running && [[ -s $STATE/servers.json ]]; then
    log "already running ($STATE)"
    return 0
  fi
  stop_courier
  stop_cyrus
  if greets "$COURIER_IP" "$PORT_IMAP" || greets "$CYRUS_IP" "$PORT_IMAP"; then
    die "cannot start Courier and Cyrus: something else answers on $COURIER_IP or $CYRUS_IP (another clone's imapservers?); stop it with that clone's imapservers.sh stop"
  fi
  ensure_mail_user
  passwords
  server_cert courier "$COURIER_IP"
  server_cert cyrus "$CYRUS_IP"
  # STARTTLS runs in imaplogin as user courier, which must read the key (implicit TLS: root)
  chgrp courier "$COURIER/tls/server.pem"
  chmod 640 "$COURIER/tls/server.pem"
  configure_courier
  configure_cyrus
  launch_courier
  launch_cyrus
  local i
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    if running; then
      write_description
      log "running: courier $COURIER_IP, cyrus $CYRUS_IP ($STATE/servers.json)"
      return 0
    fi
    sleep 0.1
  done
  stop_courier
  stop_cyrus
  die "cannot start Courier and Cyrus within ${START_TIMEOUT}s; see $COURIER/run/courier.log and $CYRUS/run/cyrus.log"
}

cmd_stop() {
  need_root
  set_state_dir "${1:-}"
  stop_courier
  stop_cyrus
  rm -f "$STATE/servers.json"
  log "stopped ($STATE)"
}

cmd_status() {
  set_state_dir "${1:-}"
  local rc=0 c=down y=down
  if greets "$COURIER_IP" "$PORT_IMAP"; then c=ok; else rc=1; fi
  if greets "$CYRUS_IP" "$PORT_IMAP"; then y=ok; else rc=1; fi
  [[ -s $STATE/servers.json ]] || rc=1
  printf 'courier %s:%s %s\ncyrus   %s:%s %s\n' "$COURIER_IP" "$PORT_IMAP" "$c" "$CYRUS_IP" "$PORT_IMAP" "$y"
  return $rc
}

main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    install) cmd_install ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    -h | --help | help) sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" ;;
    *) sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
  esac
}
main "$@"
