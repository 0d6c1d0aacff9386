# shellcheck shell=bash
# Where a service of the test command keeps its state (sourced by scripts/mailstack/mailstack.sh
# and scripts/natlab/natlab.sh; see docs/development.md "A fresh machine"). Uses the caller's
# REPO_DIR and die.
#
# Daemons that run as their own users (postfix, dovecot, coturn, miniupnpd) must pass through
# every directory above the state dir (o+x). A clone inside a mode-0700 directory (root's home, a
# `mktemp -d` folder) cannot hold it, so the default then lives in /tmp and <repo>/.<name> is a
# symlink to it. Unix socket paths are limited to 107 bytes: the real path is at most 60.
STATE_MAX_LEN=60

# unreachable_ancestor PATH: prints the first existing directory at or above PATH that other
# users cannot pass through; exit 1 when there is none.
unreachable_ancestor() {
  local p=$1 mode
  while [[ -n $p && $p != / ]]; do
    if [[ -d $p ]]; then
      mode=$(stat -L -c '%a' "$p")
      (((8#$mode & 1) == 1)) || {
        echo "$p"
        return 0
      }
    fi
    p=${p%/*}
  done
  return 1
}

# fallback_state_dir PREFIX: /tmp/PREFIX-<uid>-<hash of the repo path>, one per clone.
fallback_state_dir() {
  local hash
  hash=$(printf '%s' "$REPO_DIR" | sha256sum | cut -c1-8)
  echo "/tmp/$1-$(id -u)-$hash"
}

# make_private_dir DIR VAR: create DIR (mode 755, ours) or accept it only when it already is a
# directory we own, not a symlink: /tmp is writable by everyone.
make_private_dir() {
  local d=$1 var=$2
  if [[ -L $d || (-e $d && ! -d $d) ]]; then
    die "Cannot use $d as the state dir: it exists and is not a directory; remove it"
  fi
  [[ -d $d ]] || mkdir -m 755 "$d"
  [[ $(stat -c '%u' "$d") == "$(id -u)" ]] ||
    die "Cannot use $d as the state dir: it belongs to another user; remove it or set $var"
  chmod 755 "$d"
}

# resolve_state_dir NAME PREFIX EXPLICIT VAR: sets STATE, the absolute real path of the state
# dir. EXPLICIT (from the command line or $VAR) is used as given; the default is
# <repo>/.NAME, or /tmp/PREFIX-… with <repo>/.NAME a symlink to it.
resolve_state_dir() {
  local name=$1 prefix=$2 explicit=$3 var=$4 link=$REPO_DIR/.$1 fallback
  fallback=$(fallback_state_dir "$prefix")
  if [[ -n $explicit ]]; then
    STATE=$explicit
    [[ $STATE == /* ]] || STATE=$PWD/$STATE
    STATE=${STATE%/}
    [[ -d $STATE ]] || mkdir -p "$STATE"
    STATE=$(readlink -f "$STATE")
  elif [[ -L $link ]]; then
    STATE=$(readlink "$link")
    [[ $STATE == "$fallback" ]] ||
      die "Cannot use $link: it points to $STATE, not to this clone's $fallback; remove the link"
    make_private_dir "$STATE" "$var"
  elif ((${#link} <= STATE_MAX_LEN)) && ! unreachable_ancestor "$REPO_DIR" >/dev/null; then
    STATE=$link
    [[ -d $STATE ]] || mkdir -p "$STATE"
    # Keeps the state out of `git status` without depending on the repo's .gitignore.
    [[ -e $STATE/.gitignore ]] || echo '*' >"$STATE/.gitignore"
  else
    [[ ! -e $link ]] ||
      die "Cannot use $link: other users cannot reach it; stop what runs there, then remove it"
    STATE=$fallback
    make_private_dir "$STATE" "$var"
    ln -sfn "$STATE" "$link"
  fi
  ((${#STATE} <= STATE_MAX_LEN)) ||
    die "Cannot use $STATE as the state dir: its path is longer than $STATE_MAX_LEN characters (Unix socket paths live below it); set $var to a shorter path"
}

# remove_state_dir NAME: removes STATE and the <repo>/.NAME symlink when it points there.
remove_state_dir() {
  local link=$REPO_DIR/.$1
  if [[ -L $link && $(readlink "$link") == "$STATE" ]]; then rm -f "$link"; fi
  rm -rf "$STATE"
}
