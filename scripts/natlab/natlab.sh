#!/usr/bin/env bash
# natlab.sh — a NAT lab of network namespaces for mailpeer's NAT traversal work: two LAN hosts
# behind two routers whose NAT type is chosen per router (nftables), an "internet" bridge with a
# STUN/TURN server (coturn with two addresses, RFC 5780), miniupnpd (UPnP IGD, NAT-PMP, PCP) on
# router A on demand, and a root-namespace link for services of this machine. See docs/natlab.md.
#
#   natlab.sh install                   install missing Debian packages (no daemons started)
#   natlab.sh up [--nat A B] [--fw6 A B] [--upnp]
#                                       build the lab (idempotent; default port-restricted twice,
#                                       IPv6 firewalls stateful twice)
#   natlab.sh setnat A B                reload both routers' rulesets in place, flush conntrack
#   natlab.sh switch ROUTER TYPE        one router (rta or rtb) to NAT type TYPE mid-session:
#                                       forgets every flow but those to coturn's first address
#                                       (STUN/TURN and relayed ports): a relayed session lives on
#   natlab.sh setfw6 A B                both routers' IPv6 firewalls: open or stateful
#   natlab.sh loss PERCENT              router A drops PERCENT % of the UDP it forwards (0 = none)
#   natlab.sh upnp start|stop           miniupnpd on router A (idempotent)
#   natlab.sh status                    show the lab; exit 0 only when every part is healthy
#   natlab.sh down [--force]            remove everything the lab made (idempotent; --force
#                                       also when another clone built it)
#   natlab.sh destroy                   down, then remove the state dir (and <repo>/.natlab when
#                                       it links there)
#   natlab.sh leftovers                 print CLEAN, or what is left and exit 1
#   natlab.sh rules TYPE                print a router's nftables ruleset for NAT type TYPE
#   natlab.sh rules6 FW                 print a router's IPv6 ruleset for firewall FW
#
# NAT types: none full-cone restricted port-restricted symmetric. IPv6 (2001:db8:4d50::/48) is
# routed without NAT66; each router's IPv6 firewall is `stateful` (default: inbound only
# established/related, RFC 6092) or `open`. The state dir (configs, pids, logs, leases,
# natlab.json) is $NATLAB_DIR, else <repo>/.natlab, which is a symlink into /tmp when other
# users cannot reach the clone (a mode-0700 parent) or its path is too long.
# Needs root, except `rules` and `rules6`.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../lib/apt_install.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/apt_install.sh"
# shellcheck source=../lib/state_dir.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/state_dir.sh"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"

PACKAGES=(iproute2 nftables conntrack coturn miniupnpd-nftables miniupnpc natpmpc)
NAT_TYPES=(none full-cone restricted port-restricted symmetric)
DEFAULT_NAT=port-restricted
FW6_TYPES=(open stateful)
DEFAULT_FW6=stateful

# ---------------------------------------------------------------------------------------
# topology: every name starts with mpl- (mailpeer lab), every address is in 198.18.0.0/15
# ---------------------------------------------------------------------------------------
P=mpl-
NS_PUB=${P}pub NS_SRV=${P}srv
ROUTERS=(rta rtb)
declare -A R_NS=([rta]=${P}rta [rtb]=${P}rtb)
declare -A R_WAN=([rta]=198.18.0.1 [rtb]=198.18.0.2)
declare -A R_LAN=([rta]=198.19.1.1 [rtb]=198.19.2.1)
declare -A R_NET=([rta]=198.19.1.0/24 [rtb]=198.19.2.0/24)
declare -A R_HOST=([rta]=a [rtb]=b)
declare -A H_ROUTER=([a]=rta [b]=rtb)
declare -A H_NS=([a]=${P}a [b]=${P}b)
declare -A H_IP=([a]=198.19.1.10 [b]=198.19.2.10)
ALL_NS=("$NS_PUB" "$NS_SRV" "${R_NS[rta]}" "${R_NS[rtb]}" "${H_NS[a]}" "${H_NS[b]}")
WAN_NET=198.18.0.0/24
SRV_IP=198.18.0.10 SRV_IP2=198.18.0.11
ROOT_LINK=${P}root ROOT_IP=198.18.0.254
# One root-namespace address per provider of the mail stack (scripts/mailstack), for a later
# stack that listens there too. Nothing listens on them yet.
MAIL_DOMAINS=(a.test b.test host.test)
declare -A MAIL_IP=([a.test]=198.18.0.251 [b.test]=198.18.0.252 [host.test]=198.18.0.253)
LAB_NET=198.18.0.0/15

# IPv6: one /48 of the documentation prefix (RFC 3849; "MP" = 0x4d50), which address_class.ts
# calls `reserved`, as it calls 198.18.0.0/15: never global, so nothing of the lab looks like
# the real internet. The "internet" is its /64 :0, each LAN a routed /64 (:1, :2), no NAT66.
LAB_NET6=2001:db8:4d50::/48
WAN_NET6=2001:db8:4d50::/64
declare -A R_WAN6=([rta]=2001:db8:4d50::1 [rtb]=2001:db8:4d50::2)
declare -A R_LAN6=([rta]=2001:db8:4d50:1::1 [rtb]=2001:db8:4d50:2::1)
declare -A R_NET6=([rta]=2001:db8:4d50:1::/64 [rtb]=2001:db8:4d50:2::/64)
declare -A H_IP6=([a]=2001:db8:4d50:1::10 [b]=2001:db8:4d50:2::10)
SRV_IP6=2001:db8:4d50::10 SRV_IP6_2=2001:db8:4d50::11
ROOT_IP6=2001:db8:4d50::254

STUN_PORT=3478 STUN_ALT_PORT=3479
RELAY_MIN=49152 RELAY_MAX=49200
TURN_REALM=natlab.test TURN_USER=mailpeer
UPNP_ROUTER=rta UPNP_HTTP_PORT=5000 NATPMP_PORT=5351
UPNP_TABLE=natlab_upnp
START_TIMEOUT=${NATLAB_START_TIMEOUT:-10} # seconds, per daemon
# Debian's python3 for the STUN readiness probe: a pyenv shim on PATH costs ~0.5 s per call.
PYTHON=${NATLAB_PYTHON:-/usr/bin/python3}
[[ -x $PYTHON ]] || PYTHON=python3

log() { printf 'natlab: %s\n' "$*" >&2; }
die() {
  printf 'natlab: error: %s\n' "$*" >&2
  exit 1
}
# usage_error MESSAGE: a wrong command line exits 2 (operational failures exit 1).
usage_error() {
  printf 'natlab: error: %s\n' "$*" >&2
  exit 2
}
need_root() { [[ $(id -u) == 0 ]] || die "Cannot $1: must run as root (network namespaces, nftables); run it with sudo"; }

# ---------------------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------------------

cmd_install() {
  need_root "install packages"
  local p missing=()
  for p in "${PACKAGES[@]}"; do deb_installed "$p" || missing+=("$p"); done
  if ((${#missing[@]} == 0)); then
    log "all packages installed"
    return 0
  fi
  for p in "${missing[@]}"; do
    [[ $(apt-cache policy "$p" 2>/dev/null) == *"Candidate: "[0-9]* ]] ||
      die "Cannot install $p: apt has no candidate for it; run apt-get update or add the Debian main repository"
  done
  log "installing: ${missing[*]}"
  # apt must not start Debian's own turnserver or miniupnpd on this machine's interfaces.
  apt_install_quiet "${missing[@]}"
  log "installed"
}

# Cheap check (no dpkg): the binaries the lab runs.
require_installed() {
  local f
  for f in /usr/sbin/nft /usr/sbin/conntrack /usr/bin/turnserver "$@"; do
    [[ -x $f ]] || die "Cannot build the NAT lab: $f is missing; run: $0 install"
  done
}

# ---------------------------------------------------------------------------------------
# state directory (scripts/lib/state_dir.sh: coturn and miniupnpd may drop privileges)
# ---------------------------------------------------------------------------------------

# set_state_dir: STATE, the absolute real path of the state dir.
set_state_dir() {
  resolve_state_dir natlab mailpeer-natlab "${NATLAB_DIR:-}" NATLAB_DIR
  JSON=$STATE/natlab.json
  TURN_CONF=$STATE/turnserver.conf TURN_PID=$STATE/turnserver.pid TURN_LOG=$STATE/turnserver.log
  UPNP_CONF=$STATE/miniupnpd.conf UPNP_PID=$STATE/miniupnpd.pid UPNP_LOG=$STATE/miniupnpd.log
  UPNP_LEASES=$STATE/miniupnpd.leases
  PASS_FILE=$STATE/turn.password
}

# require_reachable: daemons that drop privileges can enter STATE.
require_reachable() {
  local bad
  if bad=$(unreachable_ancestor "$STATE"); then
    die "Cannot build the NAT lab in $STATE: other users cannot enter $bad (mode $(stat -c '%a' "$bad")); set NATLAB_DIR to a path under /tmp, or unset it to use the default"
  fi
}

# ---------------------------------------------------------------------------------------
# router rulesets
# ---------------------------------------------------------------------------------------

is_nat_type() {
  local t
  for t in "${NAT_TYPES[@]}"; do [[ $1 == "$t" ]] && return 0; done
  return 1
}

# rules TYPE: the complete `table ip natlab` of a router (interfaces "lan" and "wan").
# Chain names avoid the keywords `fwd` and `in`.
rules() {
  local type=$1 masq="masquerade" learn=0 contacted=0
  case $type in
    none) ;;
    full-cone) learn=1 ;;
    restricted) learn=1 contacted=1 ;;
    port-restricted) ;;
    symmetric) masq="masquerade fully-random" ;;
    *) return 1 ;;
  esac
  echo "# NAT type $type"
  echo "table ip natlab {"
  if ((learn)); then
    cat <<'EOF'
	# mapped port -> internal ip . port, learned from outbound UDP after SNAT (full-cone, restricted)
	map fc {
		type inet_service : ipv4_addr . inet_service
		flags dynamic,timeout
		timeout 180s
	}
EOF
  fi
  if ((contacted)); then
    cat <<'EOF'
	# remote ip . mapped port: who the LAN host has sent to (restricted)
	set contacted {
		type ipv4_addr . inet_service
		flags dynamic,timeout
		timeout 180s
	}
EOF
  fi
  if [[ $type != none ]]; then
    echo "	chain nat_prerouting {"
    echo "		type nat hook prerouting priority dstnat; policy accept;"
    if ((contacted)); then
      echo '		iifname "wan" ip saddr . udp dport @contacted dnat ip to udp dport map @fc'
    elif ((learn)); then
      echo '		iifname "wan" meta l4proto udp dnat ip to udp dport map @fc'
    fi
    echo "	}"
    echo "	chain nat_postrouting {"
    echo "		type nat hook postrouting priority srcnat; policy accept;"
    echo "		oifname \"wan\" $masq"
    echo "	}"
  fi
  if ((learn)); then
    # Priority 200 runs after SNAT (100) has written the reply tuple (the mapped port).
    echo "	chain learn_postrouting {"
    echo "		type filter hook postrouting priority 200; policy accept;"
    echo '		oifname "wan" meta l4proto udp ct direction original update @fc { ct reply proto-dst : ct original ip saddr . ct original proto-src }'
    if ((contacted)); then
      echo '		oifname "wan" meta l4proto udp ct direction original update @contacted { ip daddr . ct reply proto-dst }'
    fi
    echo "	}"
  fi
  echo "	chain forward_filter {"
  if [[ $type == none ]]; then
    echo "		type filter hook forward priority filter; policy accept;"
  else
    echo "		type filter hook forward priority filter; policy drop;"
    echo '		iifname "lan" oifname "wan" accept'
    echo '		iifname "wan" ct state established,related accept'
    # Port mappings by the full-cone map or by miniupnpd: every base chain must accept.
    echo '		iifname "wan" ct status dnat accept'
  fi
  echo "	}"
  # Input policy drop: a router that accepted unsolicited WAN UDP would confirm a conntrack
  # entry peer -> router:PORT, and the LAN host's later packet to that peer would be SNATed to
  # another port (port-restricted hole punching then fails).
  cat <<EOF
	chain input_filter {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		iifname "lan" accept
		ct state established,related accept
		icmp type echo-request accept
		# coturn's RFC 5780 answers (other address, other port) to miniupnpd's STUN self-test
		iifname "wan" ip saddr { $SRV_IP, $SRV_IP2 } udp sport { $STUN_PORT, $STUN_ALT_PORT } accept
	}
}
EOF
}

# apply_nat ROUTER TYPE: replace the router's table atomically, flush its conntrack.
apply_nat() {
  local r=$1 type=$2 ns=${R_NS[$1]}
  { echo "table ip natlab"; echo "delete table ip natlab"; rules "$type"; } |
    ip netns exec "$ns" nft -f - || die "Cannot load the $type ruleset into $ns: nft refused it; see: $0 rules $type"
  ip netns exec "$ns" conntrack -F >/dev/null 2>&1 || true
  echo "$type" >"$STATE/nat.$r"
}

nat_of() { cat "$STATE/nat.$1" 2>/dev/null || echo "?"; }

is_fw6_type() { [[ $1 == open || $1 == stateful ]]; }

# rules6 TYPE: the complete `table ip6 natlab6` of a router. IPv6 is routed, never translated:
# `stateful` is a home router's firewall after RFC 6092 (outbound opens a conntrack entry,
# inbound passes only as established/related of one: address- and port-dependent filtering),
# `open` forwards everything. The router's own input is the same in both: neighbor discovery,
# the LAN, established/related and echo requests; everything else from the WAN is dropped (as
# for IPv4, a router that accepted unsolicited WAN traffic would confirm conntrack entries).
rules6() {
  local type=$1 policy
  case $type in
    open) policy=accept ;;
    stateful) policy=drop ;;
    *) return 1 ;;
  esac
  echo "# IPv6 firewall $type"
  echo "table ip6 natlab6 {"
  echo "	chain forward6_filter {"
  echo "		type filter hook forward priority filter; policy $policy;"
  if [[ $type == stateful ]]; then
    echo '		iifname "lan" oifname "wan" accept'
    # ICMPv6 errors (packet too big, unreachable) about a flow are "related" to it.
    echo '		iifname "wan" ct state established,related accept'
  fi
  echo "	}"
  cat <<'EOF'
	chain input6_filter {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept
		iifname "lan" accept
		ct state established,related accept
		icmpv6 type echo-request accept
	}
}
EOF
}

# apply_fw6 ROUTER TYPE: replace the router's IPv6 table atomically, flush its IPv6 conntrack
# entries only (an IPv4 flow under test keeps its state).
apply_fw6() {
  local r=$1 type=$2 ns=${R_NS[$1]}
  { echo "table ip6 natlab6"; echo "delete table ip6 natlab6"; rules6 "$type"; } |
    ip netns exec "$ns" nft -f - || die "Cannot load the $type IPv6 ruleset into $ns: nft refused it; see: $0 rules6 $type"
  ip netns exec "$ns" conntrack -D -f ipv6 >/dev/null 2>&1 || true
  echo "$type" >"$STATE/fw6.$r"
}

fw6_of() { cat "$STATE/fw6.$1" 2>/dev/null || echo "?"; }

# ---------------------------------------------------------------------------------------
# namespaces and links
# ---------------------------------------------------------------------------------------

ns_exists() { [[ -e /run/netns/$1 ]]; }

# The namespaces have fixed names, so one lab runs per machine. The alias of br0 in mpl-pub
# names the state dir of the clone that built it.
lab_owner() { ns_exists "$NS_PUB" && ip netns exec "$NS_PUB" cat /sys/class/net/br0/ifalias 2>/dev/null; }

# require_own_lab WHAT: die when the lab on this machine belongs to another clone.
require_own_lab() {
  local owner
  owner=$(lab_owner) || return 0
  [[ -z $owner || $owner == "$STATE" ]] && return 0
  die "Cannot $1: the lab on this machine was built from $owner; take it down there (NATLAB_DIR=$owner $0 down) or with: $0 down --force"
}
lab_namespaces() { ip netns list 2>/dev/null | awk -v p="^$P" '$1 ~ p {print $1}'; }

# new_ns NAME [FORWARD] [IPV6]: a namespace with loopback up and forwarding (IPv4 and IPv6) as
# asked. IPv6 is on unless IPV6 is 0, set before any link exists so every link inherits it: no
# router advertisements taken, no SLAAC, no duplicate address detection (addresses are usable
# at once; the lab assigns each address once), so the only IPv6 addresses are the lab's own and
# link-local ones.
new_ns() {
  local fwd=${2:-0} v6=${3:-1} c
  ip netns add "$1"
  ip netns exec "$1" sysctl -qw net.ipv4.ip_forward="$fwd"
  if ((v6)); then
    for c in all default; do
      ip netns exec "$1" sysctl -qw "net.ipv6.conf.$c.disable_ipv6=0" "net.ipv6.conf.$c.accept_ra=0" \
        "net.ipv6.conf.$c.autoconf=0" "net.ipv6.conf.$c.accept_dad=0" "net.ipv6.conf.$c.forwarding=$fwd" \
        "net.ipv6.conf.$c.router_solicitations=0"
    done
  else
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  fi
  ip -n "$1" link set lo up
}

build_topology() {
  local r h ns d
  # mpl-pub only bridges (layer 2): it needs no IPv6 of its own.
  new_ns "$NS_PUB" 0 0
  new_ns "$NS_SRV"
  for r in "${ROUTERS[@]}"; do new_ns "${R_NS[$r]}" 1; done
  for h in a b; do new_ns "${H_NS[$h]}"; done

  # The "internet": a bridge in mpl-pub, one port per router, the server and the root ns.
  # Without a multicast querier in the lab, MLD snooping could starve neighbor discovery: the
  # bridge floods all multicast.
  ip -n "$NS_PUB" link add br0 type bridge mcast_snooping 0
  ip -n "$NS_PUB" link set br0 alias "$STATE"
  ip -n "$NS_PUB" link set br0 up
  for r in "${ROUTERS[@]}"; do
    ns=${R_NS[$r]}
    ip -n "$NS_PUB" link add "$r" type veth peer name wan netns "$ns"
    ip -n "$NS_PUB" link set "$r" master br0 up
    ip -n "$ns" addr add "${R_WAN[$r]}/24" dev wan
    ip -n "$ns" addr add "${R_WAN6[$r]}/64" dev wan nodad
    ip -n "$ns" link set wan up
    h=${R_HOST[$r]}
    ip -n "$ns" link add lan type veth peer name eth0 netns "${H_NS[$h]}"
    ip -n "$ns" addr add "${R_LAN[$r]}/24" dev lan
    ip -n "$ns" addr add "${R_LAN6[$r]}/64" dev lan nodad
    ip -n "$ns" link set lan up
    ip -n "${H_NS[$h]}" addr add "${H_IP[$h]}/24" dev eth0
    ip -n "${H_NS[$h]}" addr add "${H_IP6[$h]}/64" dev eth0 nodad
    ip -n "${H_NS[$h]}" link set eth0 up
    ip -n "${H_NS[$h]}" route add default via "${R_LAN[$r]}"
    ip -n "${H_NS[$h]}" -6 route add default via "${R_LAN6[$r]}" dev eth0
  done
  # Each router and the server know the other LAN: only NAT type none lets IPv4 use it; IPv6
  # always does (no NAT66), as far as the firewalls let it.
  ip -n "${R_NS[rta]}" route add "${R_NET[rtb]}" via "${R_WAN[rtb]}"
  ip -n "${R_NS[rtb]}" route add "${R_NET[rta]}" via "${R_WAN[rta]}"
  ip -n "${R_NS[rta]}" -6 route add "${R_NET6[rtb]}" via "${R_WAN6[rtb]}" dev wan
  ip -n "${R_NS[rtb]}" -6 route add "${R_NET6[rta]}" via "${R_WAN6[rta]}" dev wan

  ip -n "$NS_PUB" link add srv type veth peer name eth0 netns "$NS_SRV"
  ip -n "$NS_PUB" link set srv master br0 up
  ip -n "$NS_SRV" addr add "$SRV_IP/24" dev eth0
  ip -n "$NS_SRV" addr add "$SRV_IP2/24" dev eth0
  ip -n "$NS_SRV" addr add "$SRV_IP6/64" dev eth0 nodad
  ip -n "$NS_SRV" addr add "$SRV_IP6_2/64" dev eth0 nodad
  ip -n "$NS_SRV" link set eth0 up
  for r in "${ROUTERS[@]}"; do
    ip -n "$NS_SRV" route add "${R_NET[$r]}" via "${R_WAN[$r]}"
    ip -n "$NS_SRV" -6 route add "${R_NET6[$r]}" via "${R_WAN6[$r]}" dev eth0
  done

  # The root namespace joins the bridge with lab addresses only; it never forwards. Its link
  # takes no router advertisement, does no SLAAC or DAD, and sends no router solicitation
  # (set while the link is still down).
  ip link add "$ROOT_LINK" type veth peer name root netns "$NS_PUB"
  sysctl -qw "net.ipv6.conf.$ROOT_LINK.accept_ra=0" "net.ipv6.conf.$ROOT_LINK.autoconf=0" \
    "net.ipv6.conf.$ROOT_LINK.accept_dad=0" "net.ipv6.conf.$ROOT_LINK.router_solicitations=0" \
    "net.ipv6.conf.$ROOT_LINK.disable_ipv6=0"
  ip -n "$NS_PUB" link set root master br0 up
  ip addr add "$ROOT_IP/24" dev "$ROOT_LINK"
  for d in "${MAIL_DOMAINS[@]}"; do ip addr add "${MAIL_IP[$d]}/24" dev "$ROOT_LINK"; done
  ip addr add "$ROOT_IP6/64" dev "$ROOT_LINK" nodad
  ip link set "$ROOT_LINK" up
  for r in "${ROUTERS[@]}"; do
    ip route add "${R_NET[$r]}" via "${R_WAN[$r]}" dev "$ROOT_LINK"
    ip -6 route add "${R_NET6[$r]}" via "${R_WAN6[$r]}" dev "$ROOT_LINK"
  done
}

# ---------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------

# pid_alive FILE [COMM]: the pid in FILE runs (not a zombie), and is COMM when given. Sets PID.
pid_alive() {
  PID=""
  [[ -s $1 ]] || return 1
  read -r PID <"$1" || [[ -n $PID ]] || return 1
  [[ $PID =~ ^[0-9]+$ ]] || return 1
  local stat
  read -r stat 2>/dev/null <"/proc/$PID/stat" || return 1
  [[ -z ${2:-} || $stat == *"($2)"* ]] || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# stop_pidfile FILE COMM [SECONDS]: TERM the process, wait for it (KILL after SECONDS).
stop_pidfile() {
  local file=$1 comm=$2 max=$((${3:-5} * 20)) i
  if pid_alive "$file" "$comm"; then
    kill "$PID" 2>/dev/null || true
    for ((i = 0; i < max; i++)); do
      pid_alive "$file" "$comm" || break
      sleep 0.05
    done
    if pid_alive "$file" "$comm"; then kill -KILL "$PID" 2>/dev/null || true; fi
  fi
  rm -f "$file"
}

# ns_pids: every process inside a lab namespace.
ns_pids() {
  local ns
  for ns in $(lab_namespaces); do ip netns pids "$ns" 2>/dev/null || true; done
}

# stun_ok NS HOST PORT: a STUN server on HOST:PORT answers a Binding request seen from NS.
stun_ok() {
  ip netns exec "$1" "$PYTHON" - "$2" "$3" <<'EOF'
import os, socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
tid = os.urandom(12)
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.3)
try:
    s.sendto(struct.pack("!HHI", 0x0001, 0, 0x2112A442) + tid, (host, port))
    data = s.recv(2048)
except OSError:
    sys.exit(1)
sys.exit(0 if len(data) >= 20 and data[0:2] == b"\x01\x01" and data[8:20] == tid else 1)
EOF
}

# ---------------------------------------------------------------------------------------
# coturn (STUN + TURN) in mpl-srv
# ---------------------------------------------------------------------------------------

# without_inherited_fds CMD…: execs CMD with only stdin, stdout and stderr of this shell's
# descriptors. A daemon must not keep what its caller held open: `flock LOCK natlab.sh up`
# passes the lock's descriptor down, and a turnserver or miniupnpd that kept it would hold the
# lab's lock for as long as it runs.
without_inherited_fds() {
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd=${fd##*/}
    ((fd > 2)) && eval "exec $fd>&-"
  done
  exec "$@"
}

write_turn_conf() {
  local mask
  mask=$(umask)
  umask 077
  od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$PASS_FILE"
  TURN_PASS=$(<"$PASS_FILE")
  cat >"$TURN_CONF" <<EOF
# Written by natlab.sh up; the password is new on every up.
listening-ip=$SRV_IP
listening-ip=$SRV_IP2
listening-ip=$SRV_IP6
listening-ip=$SRV_IP6_2
listening-port=$STUN_PORT
alt-listening-port=$STUN_ALT_PORT
relay-ip=$SRV_IP
relay-ip=$SRV_IP6
min-port=$RELAY_MIN
max-port=$RELAY_MAX
lt-cred-mech
user=$TURN_USER:$TURN_PASS
realm=$TURN_REALM
userdb=$STATE/turndb
pidfile=$TURN_PID
log-file=$TURN_LOG
simple-log
no-cli
no-tls
no-dtls
no-multicast-peers
no-software-attribute
EOF
  umask "$mask"
}

start_coturn() {
  rm -f "$TURN_PID" "$STATE/turndb"
  write_turn_conf
  without_inherited_fds ip netns exec "$NS_SRV" setsid /usr/bin/turnserver -c "$TURN_CONF" \
    </dev/null >"$STATE/turnserver.out" 2>&1 &
  local deadline=$((SECONDS + START_TIMEOUT))
  until stun_ok "$NS_SRV" "$SRV_IP" "$STUN_PORT" && stun_ok "$NS_SRV" "$SRV_IP2" "$STUN_ALT_PORT" &&
    stun_ok "$NS_SRV" "$SRV_IP6" "$STUN_PORT"; do
    ((SECONDS < deadline)) || die "Cannot start coturn in $NS_SRV: no STUN answer on $SRV_IP:$STUN_PORT, $SRV_IP2:$STUN_ALT_PORT and [$SRV_IP6]:$STUN_PORT after ${START_TIMEOUT}s; see $TURN_LOG"
  done
}

# ---------------------------------------------------------------------------------------
# miniupnpd (UPnP IGD, NAT-PMP, PCP) on router A
# ---------------------------------------------------------------------------------------

upnp_url() { echo "http://${R_LAN[$UPNP_ROUTER]}:$UPNP_HTTP_PORT/rootDesc.xml"; }

write_upnp_conf() {
  local r=$UPNP_ROUTER
  cat >"$UPNP_CONF" <<EOF
# Written by natlab.sh upnp start.
ext_ifname=wan
listening_ip=lan
http_port=$UPNP_HTTP_PORT
enable_natpmp=yes
enable_upnp=yes
secure_mode=yes
system_uptime=yes
# 198.18.0.0/15 is "reserved" for miniupnpd 2.3.1, so ext_ip cannot be set: it learns the
# external address by STUN (RFC 5780) from the lab's coturn.
ext_perform_stun=yes
ext_stun_host=$SRV_IP
ext_stun_port=$STUN_PORT
lease_file=$UPNP_LEASES
uuid=$(cat /proc/sys/kernel/random/uuid)
upnp_table_name=$UPNP_TABLE
upnp_nat_table_name=$UPNP_TABLE
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
allow 1024-65535 ${R_NET[$r]} 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
}

# miniupnpd creates no table or chain of its own (Debian's nft_init.sh is broken): base chains
# that jump into the chains it fills.
upnp_table() {
  cat <<EOF
table inet $UPNP_TABLE
delete table inet $UPNP_TABLE
table inet $UPNP_TABLE {
	chain miniupnpd {
	}
	chain prerouting_miniupnpd {
	}
	chain postrouting_miniupnpd {
	}
	chain forward_upnp {
		type filter hook forward priority filter; policy accept;
		jump miniupnpd
	}
	chain prerouting_upnp {
		type nat hook prerouting priority dstnat; policy accept;
		jump prerouting_miniupnpd
	}
	chain postrouting_upnp {
		type nat hook postrouting priority srcnat; policy accept;
		jump postrouting_miniupnpd
	}
}
EOF
}

# upnp_http_ok: miniupnpd serves its device description to the LAN host.
upnp_http_ok() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  ip netns exec "${H_NS[${R_HOST[$UPNP_ROUTER]}]}" bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "GET /rootDesc.xml HTTP/1.0\r\nHost: %s\r\n\r\n" "$1" >&3
    IFS= read -r -t 2 line <&3 && [[ $line == "HTTP/1."?" 200"* ]]' _ "${R_LAN[$UPNP_ROUTER]}" "$UPNP_HTTP_PORT" 2>/dev/null
}

upnp_running() { pid_alive "$UPNP_PID" miniupnpd; }

start_upnp() {
  require_installed /usr/sbin/miniupnpd
  local ns=${R_NS[$UPNP_ROUTER]}
  if upnp_running && upnp_http_ok; then
    log "miniupnpd already running (pid $PID, $(upnp_url))"
    return 0
  fi
  stop_upnp
  pid_alive "$TURN_PID" turnserver || die "Cannot start miniupnpd: coturn is not running, and miniupnpd learns its external address from it; run: $0 up"
  write_upnp_conf
  upnp_table | ip netns exec "$ns" nft -f - || die "Cannot create table inet $UPNP_TABLE in $ns: nft refused it"
  : >"$UPNP_LEASES"
  without_inherited_fds ip netns exec "$ns" setsid /usr/sbin/miniupnpd -f "$UPNP_CONF" -d \
    -P "$UPNP_PID" </dev/null >"$UPNP_LOG" 2>&1 &
  local deadline=$((SECONDS + START_TIMEOUT))
  until upnp_http_ok; do
    if ((SECONDS >= deadline)) || ! kill -0 $! 2>/dev/null; then
      stop_upnp
      die "Cannot start miniupnpd in $ns: $(upnp_url) does not answer after ${START_TIMEOUT}s; see $UPNP_LOG"
    fi
    sleep 0.05
  done
  if grep -q "Port forwarding is now disabled" "$UPNP_LOG"; then
    stop_upnp
    die "Cannot start miniupnpd in $ns: its STUN self-test failed (port forwarding disabled); see $UPNP_LOG"
  fi
  log "miniupnpd running on $ns ($(upnp_url), NAT-PMP/PCP ${R_LAN[$UPNP_ROUTER]}:$NATPMP_PORT)"
}

# stop_upnp: miniupnpd needs about 2 s to exit on SIGTERM; a restart before then fails with
# "already running", so wait for it. Its table (every mapping) goes with it.
stop_upnp() {
  stop_pidfile "$UPNP_PID" miniupnpd 6
  local ns=${R_NS[$UPNP_ROUTER]}
  if ns_exists "$ns"; then
    ip netns exec "$ns" nft delete table inet "$UPNP_TABLE" 2>/dev/null || true
  fi
  rm -f "$UPNP_LEASES"
}

# ---------------------------------------------------------------------------------------
# natlab.json
# ---------------------------------------------------------------------------------------

write_json() {
  local pass upnp="null" d mail="" sep=""
  pass=$(<"$PASS_FILE")
  if upnp_running; then
    upnp="{\"router\":\"$UPNP_ROUTER\",\"ns\":\"${R_NS[$UPNP_ROUTER]}\",\"url\":\"$(upnp_url)\",\"host\":\"${R_LAN[$UPNP_ROUTER]}\",\"http_port\":$UPNP_HTTP_PORT,\"natpmp_port\":$NATPMP_PORT,\"pcp_port\":$NATPMP_PORT,\"pid\":$PID}"
  fi
  for d in "${MAIL_DOMAINS[@]}"; do
    mail+="$sep\"$d\":\"${MAIL_IP[$d]}\""
    sep=,
  done
  (
    umask 077
    cat >"$JSON.tmp" <<EOF
{
  "state_dir": "$STATE",
  "namespaces": {"pub": "$NS_PUB", "srv": "$NS_SRV", "rta": "${R_NS[rta]}", "rtb": "${R_NS[rtb]}", "a": "${H_NS[a]}", "b": "${H_NS[b]}"},
  "hosts": {
    "a": {"ns": "${H_NS[a]}", "ip": "${H_IP[a]}", "gateway": "${R_LAN[rta]}", "router": "rta", "ip6": "${H_IP6[a]}", "gateway6": "${R_LAN6[rta]}"},
    "b": {"ns": "${H_NS[b]}", "ip": "${H_IP[b]}", "gateway": "${R_LAN[rtb]}", "router": "rtb", "ip6": "${H_IP6[b]}", "gateway6": "${R_LAN6[rtb]}"}
  },
  "routers": {
    "rta": {"ns": "${R_NS[rta]}", "wan": "${R_WAN[rta]}", "lan": "${R_LAN[rta]}", "lan_net": "${R_NET[rta]}", "nat": "$(nat_of rta)",
      "wan6": "${R_WAN6[rta]}", "lan6": "${R_LAN6[rta]}", "lan_net6": "${R_NET6[rta]}", "fw6": "$(fw6_of rta)"},
    "rtb": {"ns": "${R_NS[rtb]}", "wan": "${R_WAN[rtb]}", "lan": "${R_LAN[rtb]}", "lan_net": "${R_NET[rtb]}", "nat": "$(nat_of rtb)",
      "wan6": "${R_WAN6[rtb]}", "lan6": "${R_LAN6[rtb]}", "lan_net6": "${R_NET6[rtb]}", "fw6": "$(fw6_of rtb)"}
  },
  "nat": {"a": "$(nat_of rta)", "b": "$(nat_of rtb)"},
  "fw6": {"a": "$(fw6_of rta)", "b": "$(fw6_of rtb)"},
  "internet": {"ns": "$NS_PUB", "bridge": "br0", "net": "$WAN_NET", "net6": "$WAN_NET6", "lab_net6": "$LAB_NET6"},
  "server": {"ns": "$NS_SRV", "ips": ["$SRV_IP", "$SRV_IP2"], "ips6": ["$SRV_IP6", "$SRV_IP6_2"]},
  "root": {"link": "$ROOT_LINK", "ip": "$ROOT_IP", "ip6": "$ROOT_IP6", "mail": {$mail}},
  "coturn": {"ns": "$NS_SRV", "host": "$SRV_IP", "alt_host": "$SRV_IP2", "port": $STUN_PORT, "alt_port": $STUN_ALT_PORT,
    "host6": "$SRV_IP6", "alt_host6": "$SRV_IP6_2",
    "realm": "$TURN_REALM", "user": "$TURN_USER", "password": "$pass", "relay_ip": "$SRV_IP", "relay_ip6": "$SRV_IP6", "relay_ports": [$RELAY_MIN, $RELAY_MAX]},
  "upnp": $upnp
}
EOF
    mv -f "$JSON.tmp" "$JSON"
  )
}

# ---------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------

# healthy: every namespace, the root link, both routers' tables, coturn (and miniupnpd when it
# was started) are there and answer.
healthy() {
  local ns r
  for ns in "${ALL_NS[@]}"; do ns_exists "$ns" || return 1; done
  ip link show "$ROOT_LINK" >/dev/null 2>&1 || return 1
  for r in "${ROUTERS[@]}"; do
    ip netns exec "${R_NS[$r]}" nft list table ip natlab >/dev/null 2>&1 || return 1
    ip netns exec "${R_NS[$r]}" nft list table ip6 natlab6 >/dev/null 2>&1 || return 1
  done
  pid_alive "$TURN_PID" turnserver && stun_ok "$NS_SRV" "$SRV_IP" "$STUN_PORT" &&
    stun_ok "$NS_SRV" "$SRV_IP6" "$STUN_PORT" || return 1
  if [[ -e $STATE/upnp.wanted ]]; then upnp_running && upnp_http_ok || return 1; fi
  [[ -s $JSON ]]
}

parse_nat_args() {
  NAT_A=$1 NAT_B=$2
  if ! is_nat_type "$NAT_A" || ! is_nat_type "$NAT_B"; then
    usage_error "Cannot use NAT types '$NAT_A' '$NAT_B': each must be one of ${NAT_TYPES[*]}"
  fi
}

parse_fw6_args() {
  FW6_A=$1 FW6_B=$2
  if ! is_fw6_type "$FW6_A" || ! is_fw6_type "$FW6_B"; then
    usage_error "Cannot use IPv6 firewalls '$FW6_A' '$FW6_B': each must be one of ${FW6_TYPES[*]}"
  fi
}

cmd_up() {
  local nat_a="" nat_b="" fw6_a="" fw6_b="" upnp=0
  while (($#)); do
    case $1 in
      --nat)
        (($# >= 3)) || usage_error "Cannot parse --nat: it needs two NAT types (${NAT_TYPES[*]})"
        parse_nat_args "$2" "$3"
        nat_a=$NAT_A nat_b=$NAT_B
        shift 3
        ;;
      --fw6)
        (($# >= 3)) || usage_error "Cannot parse --fw6: it needs two IPv6 firewalls (${FW6_TYPES[*]})"
        parse_fw6_args "$2" "$3"
        fw6_a=$FW6_A fw6_b=$FW6_B
        shift 3
        ;;
      --upnp)
        upnp=1
        shift
        ;;
      *) usage_error "Cannot parse '$1': up takes [--nat A B] [--fw6 A B] [--upnp]" ;;
    esac
  done
  need_root "build the NAT lab"
  require_installed
  set_state_dir
  require_reachable
  require_own_lab "build the NAT lab"
  local started=$EPOCHREALTIME
  if healthy; then
    [[ -n $nat_a ]] && { apply_nat rta "$nat_a"; apply_nat rtb "$nat_b"; }
    [[ -n $fw6_a ]] && { apply_fw6 rta "$fw6_a"; apply_fw6 rtb "$fw6_b"; }
    if ((upnp)); then
      : >"$STATE/upnp.wanted"
      start_upnp
    fi
    write_json
    log "already up (NAT $(nat_of rta) / $(nat_of rtb), IPv6 firewall $(fw6_of rta) / $(fw6_of rtb); $JSON)"
    return 0
  fi
  # Anything half-built is removed first: a clean build every time.
  teardown
  build_topology
  apply_nat rta "${nat_a:-$DEFAULT_NAT}"
  apply_nat rtb "${nat_b:-$DEFAULT_NAT}"
  apply_fw6 rta "${fw6_a:-$DEFAULT_FW6}"
  apply_fw6 rtb "${fw6_b:-$DEFAULT_FW6}"
  start_coturn
  if ((upnp)); then
    : >"$STATE/upnp.wanted"
    start_upnp
  fi
  write_json
  local ms=$(((${EPOCHREALTIME/./} - ${started/./}) / 1000))
  log "up in ${ms} ms: NAT $(nat_of rta) / $(nat_of rtb), IPv6 firewall $(fw6_of rta) / $(fw6_of rtb), coturn $SRV_IP:$STUN_PORT + [$SRV_IP6]:$STUN_PORT ($JSON)"
}

cmd_setnat() {
  (($# == 2)) || usage_error "Cannot parse setnat: it takes two NAT types (${NAT_TYPES[*]})"
  parse_nat_args "$1" "$2"
  need_root "change the NAT types"
  set_state_dir
  require_own_lab "change the NAT types"
  local r
  for r in "${ROUTERS[@]}"; do ns_exists "${R_NS[$r]}" || die "Cannot change the NAT types: ${R_NS[$r]} does not exist; run: $0 up"; done
  apply_nat rta "$NAT_A"
  apply_nat rtb "$NAT_B"
  [[ ! -e $PASS_FILE ]] || write_json
  log "NAT $NAT_A / $NAT_B"
}

cmd_switch() {
  (($# == 2)) || usage_error "Cannot parse switch: it takes a router (rta or rtb) and a NAT type (${NAT_TYPES[*]})"
  local r=$1 type=$2
  [[ $r == rta || $r == rtb ]] || usage_error "Cannot switch router $r: name rta or rtb"
  is_nat_type "$type" || usage_error "Cannot switch $r to NAT type $type: use one of ${NAT_TYPES[*]}"
  need_root "switch a router's NAT type"
  set_state_dir
  require_own_lab "switch a router's NAT type"
  local ns=${R_NS[$r]}
  ns_exists "$ns" || die "Cannot switch $r: $ns does not exist; run: $0 up"
  { echo "table ip natlab"; echo "delete table ip natlab"; rules "$type"; } |
    ip netns exec "$ns" nft -f - || die "Cannot load the $type ruleset into $ns: nft refused it; see: $0 rules $type"
  # Every flow but those to coturn's first address (its STUN/TURN port and the relayed addresses
  # of allocations) starts over under the new rules: a relayed session keeps its mappings, as a
  # router keeps an established flow's, while STUN at the second address sees the new behaviour.
  local line kept=0 dropped=0
  while read -r line; do
    local -a args=()
    [[ $line =~ src=([0-9.]+)\ dst=([0-9.]+)\ sport=([0-9]+)\ dport=([0-9]+) ]] || continue
    [[ ${BASH_REMATCH[2]} == "$SRV_IP" ]] && { kept=$((kept + 1)); continue; }
    args=(-s "${BASH_REMATCH[1]}" -d "${BASH_REMATCH[2]}" --sport "${BASH_REMATCH[3]}" --dport "${BASH_REMATCH[4]}")
    ip netns exec "$ns" conntrack -D -p udp "${args[@]}" >/dev/null 2>&1 && dropped=$((dropped + 1))
  done < <(ip netns exec "$ns" conntrack -L -p udp 2>/dev/null)
  echo "$type" >"$STATE/nat.$r"
  [[ ! -e $PASS_FILE ]] || write_json
  log "$r switched to $type: kept $kept flows to $SRV_IP, forgot $dropped others"
}

cmd_setfw6() {
  (($# == 2)) || usage_error "Cannot parse setfw6: it takes two IPv6 firewalls (${FW6_TYPES[*]})"
  parse_fw6_args "$1" "$2"
  need_root "change the IPv6 firewalls"
  set_state_dir
  require_own_lab "change the IPv6 firewalls"
  local r
  for r in "${ROUTERS[@]}"; do ns_exists "${R_NS[$r]}" || die "Cannot change the IPv6 firewalls: ${R_NS[$r]} does not exist; run: $0 up"; done
  apply_fw6 rta "$FW6_A"
  apply_fw6 rtb "$FW6_B"
  [[ ! -e $PASS_FILE ]] || write_json
  log "IPv6 firewall $FW6_A / $FW6_B"
}

# loss PERCENT: router A drops that share of forwarded UDP, both directions, in a table of its
# own (`table ip natlab_loss`, with a counter of what it dropped), so `setnat` keeps it; 0
# removes the table.
cmd_loss() {
  if (($# != 1)) || ! [[ $1 =~ ^[0-9]+$ ]] || (($1 > 100)); then
    usage_error "Cannot parse loss: it takes one whole percentage, 0 to 100"
  fi
  local percent=$1 ns=${R_NS[rta]}
  need_root "change the lab's packet loss"
  set_state_dir
  require_own_lab "change the lab's packet loss"
  ns_exists "$ns" || die "Cannot change the lab's packet loss: $ns does not exist; run: $0 up"
  ip netns exec "$ns" nft delete table ip natlab_loss 2>/dev/null || true
  if ((percent > 0)); then
    ip netns exec "$ns" nft -f - <<EOF || die "Cannot load the loss rule into $ns: nft refused it"
table ip natlab_loss {
	chain loss_forward {
		type filter hook forward priority filter - 10; policy accept;
		meta l4proto udp numgen random mod 100 < $percent counter drop
	}
}
EOF
  fi
  echo "$percent" >"$STATE/loss.rta"
  log "router A drops $percent % of forwarded UDP"
}

cmd_upnp() {
  need_root "control miniupnpd"
  set_state_dir
  require_own_lab "control miniupnpd"
  case ${1:-} in
    start)
      ns_exists "${R_NS[$UPNP_ROUTER]}" || die "Cannot start miniupnpd: ${R_NS[$UPNP_ROUTER]} does not exist; run: $0 up"
      : >"$STATE/upnp.wanted"
      start_upnp
      ;;
    stop)
      rm -f "$STATE/upnp.wanted"
      stop_upnp
      log "miniupnpd stopped"
      ;;
    *) usage_error "Cannot parse upnp '${1:-}': use upnp start or upnp stop" ;;
  esac
  [[ ! -e $PASS_FILE ]] || ! ns_exists "$NS_SRV" || write_json
}

# teardown: stop the daemons, every process in a lab namespace, the root link and the
# namespaces (their nft tables, routes and links go with them).
teardown() {
  local pids i
  stop_pidfile "$UPNP_PID" miniupnpd 6
  stop_pidfile "$TURN_PID" turnserver 5
  # Everything else in a namespace (probes, the selftest's reflector, shells) by namespace: a
  # pid file of a process that may be long gone could name an unrelated process by now.
  mapfile -t pids < <(ns_pids)
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
      mapfile -t pids < <(ns_pids)
      ((${#pids[@]})) || break
      ((i == 40)) && kill -KILL "${pids[@]}" 2>/dev/null
      sleep 0.05
    done
  fi
  ip link del "$ROOT_LINK" 2>/dev/null || true
  local ns
  for ns in $(lab_namespaces); do ip netns del "$ns" 2>/dev/null || true; done
  rm -f "$JSON" "$STATE"/nat.* "$STATE"/fw6.* "$STATE/upnp.wanted" "$UPNP_LEASES" "$PASS_FILE"
}

# destroy: take this clone's lab down, then remove its state dir (and the <repo>/.natlab link
# into /tmp), so a test run leaves nothing behind.
cmd_destroy() {
  cmd_down
  remove_state_dir natlab
  log "removed ($STATE)"
}

cmd_down() {
  need_root "take the NAT lab down"
  set_state_dir
  case ${1:-} in
    --force) ;;
    "") require_own_lab "take the NAT lab down" ;;
    *) usage_error "Cannot parse '$1': down takes [--force]" ;;
  esac
  local started=$EPOCHREALTIME
  teardown
  local ms=$(((${EPOCHREALTIME/./} - ${started/./}) / 1000))
  log "down in ${ms} ms ($STATE)"
}

# lab_processes: daemons and probes of this lab that outlived their namespace.
lab_processes() {
  local path link pid cmd
  while read -r path link; do
    pid=${path#/proc/}
    pid=${pid%%/*}
    case $link in
      /usr/bin/turnserver | /usr/sbin/miniupnpd | */deno)
        cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || continue
        [[ $cmd == *"$STATE/"* || $cmd == *scripts/natlab/probe.ts* ]] && echo "$pid $cmd"
        ;;
    esac
  done < <(find /proc/[0-9]*/exe -maxdepth 0 -printf '%p %l\n' 2>/dev/null)
}

cmd_leftovers() {
  set_state_dir
  local left=() ns t
  if t=$(lab_owner) && [[ -n $t && $t != "$STATE" ]]; then left+=("lab built from $t"); fi
  for ns in $(lab_namespaces); do left+=("netns $ns"); done
  ip link show "$ROOT_LINK" >/dev/null 2>&1 && left+=("link $ROOT_LINK")
  while read -r t; do [[ -n $t ]] && left+=("root-ns route $t"); done < <(ip -4 route show to root "$LAB_NET" 2>/dev/null)
  while read -r t; do [[ -n $t ]] && left+=("root-ns address $t"); done < <(ip -4 -o addr show to "$LAB_NET" 2>/dev/null | awk '{print $2, $4}')
  while read -r t; do [[ -n $t ]] && left+=("root-ns route $t"); done < <(ip -6 route show to root "$LAB_NET6" 2>/dev/null)
  while read -r t; do [[ -n $t ]] && left+=("root-ns address $t"); done < <(ip -6 -o addr show to "$LAB_NET6" 2>/dev/null | awk '{print $2, $4}')
  if command -v nft >/dev/null; then
    while read -r t; do [[ $t == *natlab* ]] && left+=("root-ns nft $t"); done < <(nft list tables 2>/dev/null)
  fi
  while read -r t; do [[ -n $t ]] && left+=("process $t"); done < <(lab_processes)
  if ((${#left[@]} == 0)); then
    echo CLEAN
    return 0
  fi
  printf '%s\n' "${left[@]}"
  return 1
}

cmd_status() {
  set_state_dir
  local rc=0 ns r h state
  printf '%-22s %s\n' PART STATE
  for ns in "${ALL_NS[@]}"; do
    if ns_exists "$ns"; then state=ok; else state=missing rc=1; fi
    printf '%-22s %s\n' "netns $ns" "$state"
  done
  if ip link show "$ROOT_LINK" >/dev/null 2>&1; then
    state="ok $(ip -o addr show dev "$ROOT_LINK" scope global | awk '{printf "%s ", $4}')"
  else
    state=missing rc=1
  fi
  printf '%-22s %s\n' "link $ROOT_LINK" "$state"
  for r in "${ROUTERS[@]}"; do
    if ns_exists "${R_NS[$r]}" && ip netns exec "${R_NS[$r]}" nft list table ip natlab >/dev/null 2>&1; then
      state="$(nat_of "$r") (wan ${R_WAN[$r]})"
    else
      state=missing rc=1
    fi
    printf '%-22s %s\n' "nat ${R_NS[$r]}" "$state"
    if ns_exists "${R_NS[$r]}" && ip netns exec "${R_NS[$r]}" nft list table ip6 natlab6 >/dev/null 2>&1; then
      state="$(fw6_of "$r") (wan ${R_WAN6[$r]}, lan ${R_NET6[$r]})"
    else
      state=missing rc=1
    fi
    printf '%-22s %s\n' "ipv6 ${R_NS[$r]}" "$state"
  done
  for h in a b; do
    if ns_exists "${H_NS[$h]}" && ip -n "${H_NS[$h]}" -6 -o addr show dev eth0 to "${H_IP6[$h]}/128" | grep -q .; then
      state="ok ${H_IP6[$h]} via ${R_LAN6[${H_ROUTER[$h]}]}"
    else
      state=missing rc=1
    fi
    printf '%-22s %s\n' "ipv6 ${H_NS[$h]}" "$state"
  done
  if pid_alive "$TURN_PID" turnserver && ns_exists "$NS_SRV" && stun_ok "$NS_SRV" "$SRV_IP" "$STUN_PORT" &&
    stun_ok "$NS_SRV" "$SRV_IP6" "$STUN_PORT"; then
    state="ok pid $PID, $SRV_IP:$STUN_PORT + $SRV_IP2:$STUN_ALT_PORT + [$SRV_IP6]:$STUN_PORT"
  else
    state="down" rc=1
  fi
  printf '%-22s %s\n' coturn "$state"
  if upnp_running && upnp_http_ok; then
    state="ok pid $PID, $(upnp_url)"
  elif [[ -e $STATE/upnp.wanted ]]; then
    state="down (started, not answering)" rc=1
  else
    state="off"
  fi
  printf '%-22s %s\n' miniupnpd "$state"
  if [[ -s $JSON ]]; then state=$JSON; else state=missing rc=1; fi
  printf '%-22s %s\n' natlab.json "$state"
  return $rc
}

cmd_rules() {
  is_nat_type "${1:-}" || usage_error "Cannot print rules for '${1:-}': TYPE must be one of ${NAT_TYPES[*]}"
  rules "$1"
}

cmd_rules6() {
  is_fw6_type "${1:-}" || usage_error "Cannot print IPv6 rules for '${1:-}': FW must be one of ${FW6_TYPES[*]}"
  rules6 "$1"
}

usage() {
  sed -n '2,28s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    install) cmd_install ;;
    up) cmd_up "$@" ;;
    setnat) cmd_setnat "$@" ;;
    switch) cmd_switch "$@" ;;
    setfw6) cmd_setfw6 "$@" ;;
    loss) cmd_loss "$@" ;;
    upnp) cmd_upnp "$@" ;;
    status) cmd_status ;;
    down) cmd_down "$@" ;;
    destroy) cmd_destroy ;;
    leftovers) cmd_leftovers ;;
    rules) cmd_rules "$@" ;;
    rules6) cmd_rules6 "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}
main "$@"
