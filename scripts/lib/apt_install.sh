# Sourced by the service scripts: installs Debian packages without letting apt start their
# daemons (invoke-rc.d asks /usr/sbin/policy-rc.d; exit 101 = "action forbidden"), and restores
# any policy-rc.d that was there before.

# deb_installed PKG: true when the package is installed.
deb_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

_restore_policy() {
  local policy=$1 backup=$2
  if [[ -n $backup ]]; then mv -f "$backup" "$policy"; else rm -f "$policy"; fi
}

# apt_install_quiet PKG...: apt-get update + install, with daemons kept from starting.
apt_install_quiet() {
  local policy=/usr/sbin/policy-rc.d backup=""
  if [[ -e $policy ]]; then
    backup=$(mktemp)
    cp -p "$policy" "$backup"
  fi
  # shellcheck disable=SC2064  # expand now: restore exactly this backup
  trap "_restore_policy '$policy' '$backup'" EXIT
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  _restore_policy "$policy" "$backup"
  trap - EXIT
}
