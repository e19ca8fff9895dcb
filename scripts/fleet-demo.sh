#!/usr/bin/env bash
# A fleet on this machine: 1 central (gRPC 9013, HTTP 9014) and 3 sidecars following it
# (gRPC 8113/8123/8133, HTTP 8114/8124/8134), each on its own store in a temporary folder.
# Prints the fleet view, engages the kill switch on central and waits for every sidecar's ack,
# prints the view again, then keeps running until Ctrl-C, which stops all four.
# FLEET_DEMO_EXIT=1 stops them after the second view (what the test of this script does).
# FLEET_DEMO_BASE_PORT moves every port by the same offset (default 0).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/src/cli/govd.js ] || npm run -s build
off=${FLEET_DEMO_BASE_PORT:-0}
dir=$(mktemp -d)
export GOVD_ADMIN_TOKEN=fleet-demo-token GOVD_LOG_LEVEL=warn
printf '%s\n' "$GOVD_ADMIN_TOKEN" >"$dir/token"
chmod 600 "$dir/token"
pids=()
stop() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

ready() { # url: wait up to 30 s for 200
  for _ in $(seq 300); do
    node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$1" && return 0
    sleep 0.1
  done
  echo "fleet-demo: $1 did not become ready" >&2
  return 1
}

node dist/src/cli/govd.js central --data-dir "$dir/central" \
  --grpc-port $((9013 + off)) --http-port $((9014 + off)) &
pids+=($!)
ready "http://127.0.0.1:$((9014 + off))/readyz"
for i in 1 2 3; do
  node dist/src/cli/govd.js serve --data-dir "$dir/sidecar-$i" \
    --grpc-port $((8103 + 10 * i + off)) --http-port $((8104 + 10 * i + off)) \
    --central "127.0.0.1:$((9013 + off))" --sidecar-id "demo-$i" --engine WHOLESALE &
  pids+=($!)
done
for i in 1 2 3; do ready "http://127.0.0.1:$((8104 + 10 * i + off))/readyz"; done

govctl=(node dist/src/cli/govctl.js --addr "127.0.0.1:$((9013 + off))" --token-file "$dir/token")
echo "== the fleet view (govctl --addr 127.0.0.1:$((9013 + off)) fleet)"
"${govctl[@]}" fleet
echo "== kill switch engaged on central, waiting for every sidecar's ack"
"${govctl[@]}" killswitch engage --reason "fleet demo" --wait 2s
echo "== the fleet view again"
"${govctl[@]}" fleet
[ "${FLEET_DEMO_EXIT:-0}" = 1 ] && exit 0
echo "running: central 127.0.0.1:$((9013 + off)), sidecars 127.0.0.1:$((8113 + off)), :$((8123 + off)), :$((8133 + off)); Ctrl-C stops all four"
wait
