# Sourced by scripts/test and scripts/up: a virtual environment in ./.venv with megaplane installed.
# Debian's system Python refuses `pip install` (externally managed), so everything goes into the venv;
# python3-venv is installed first where the venv module is missing.
#   $1: the pip extras to install ("" or "[test]")
megaplane_venv() {
  local extras="${1:-}"
  local SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv >/dev/null 2>&1; then
      rm -rf .venv
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv python3-pip
      python3 -m venv .venv
    fi
  fi
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
}
