#!/usr/bin/env bash
# Builds vigil and runs every test: the C++ units (ctest) and the end-to-end
# tests (pytest), which drive every CPython 3.8+ found on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/python "$@"
