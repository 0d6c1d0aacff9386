# shellcheck shell=bash
# Sourced by the scripts/bench* wrappers and scripts/simulate (issue 18): with -h or --help among
# the arguments, prints the wrapper's header comment (what it does, its usage) and exits 0 before
# anything starts: no mail stack, no Redis, no Deno.
# Usage (in a wrapper, after root=…):  source "$root/scripts/lib/help.sh"; help_and_exit "$0" "$@"
help_and_exit() {
  local script="$1" a
  shift
  for a in "$@"; do
    if [[ "$a" == "--help" || "$a" == "-h" ]]; then
      # the comment block after the shebang, without its "# "
      sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$script"
      exit 0
    fi
  done
}
