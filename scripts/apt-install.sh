# shellcheck shell=bash
# Sourced by the setup scripts (setup-moto.sh, setup-prism.sh), not run.
#
# apt_install WHO HINT PACKAGE...: installs Debian's PACKAGEs with apt-get
# when run as root; otherwise prints "WHO: HINT" and exits 1.
apt_install() {
  local who=$1 hint=$2
  shift 2
  if [ "$(id -u)" != 0 ]; then
    echo "$who: $hint" >&2
    exit 1
  fi
  echo "$who: installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
