#!/usr/bin/env bash
# Installs the Debian packages vigil needs to build and test; does nothing
# when they are all there already (idempotent, no network then).
set -euo pipefail

PACKAGES=(
  cmake ninja-build g++ pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libfmt-dev nlohmann-json3-dev libelf-dev
  python3 python3-pytest util-linux clang-format chromium
  libprotobuf-dev protobuf-compiler zlib1g-dev libzstd-dev
  python3-jsonschema python3-protobuf golang-go libncurses-dev tmux
  libtomlplusplus-dev libsqlite3-dev python3-venv python3-pip python3-flask gunicorn wrk python3-django
)

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "vigil: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "vigil: installing packages needs root; run as root or install them yourself" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
