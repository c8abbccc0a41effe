#!/usr/bin/env bash
# The main job on a demo: builds vigil, starts a small Python service with
# busy, sleeping and waiting worker threads, and dumps every thread's stack.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
python=$(command -v python3)
exec 3< <(VIGIL_READY_FD=1 exec "$python" examples/demo_service.py)
read -r pid <&3
trap 'kill "$pid" 2>/dev/null || true' EXIT
echo "== vigil dump $pid   (a demo service running on $("$python" --version 2>&1))"
build/src/cli/vigil dump "$pid"
echo
echo "== vigil dump --locals $pid   (the request handler's frame)"
build/src/cli/vigil dump --locals "$pid" | grep -A8 'handle_request (' | head -9
echo
echo "== vigil record --pid $pid --duration 2 -o build/demo-profile.html   (a flame graph to open in a browser)"
build/src/cli/vigil record --pid "$pid" --duration 2 -o build/demo-profile.html
