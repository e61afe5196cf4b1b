#!/usr/bin/env bash
# Quick start: install, then run the daemon against a simulated tower with a fire in view
# and show what reaches the broker (retained status and alarms).
set -euo pipefail
cd "$(dirname "$0")"

SCENARIO="${DEMO_SCENARIO:-benchmarks/scenarios/mission-2m-10km.yaml}"
DURATION="${DEMO_DURATION:-240}"       # seconds of tower time
SPEED="${DEMO_SPEED:-2}"               # tower clock speed
PORT="${DEMO_MQTT_PORT:-18830}"

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
if [ "${#need_apt[@]}" -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e .
export NUMBA_CACHE_DIR="$PWD/.cache/numba"

work=$(mktemp -d)
cleanup() {
  pkill -P $$ 2>/dev/null || true   # broker, subscribers, simulated tower
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$PORT" > "$work/mosquitto.conf"
"$MOSQUITTO" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
sleep 0.5

# what the hub receives: status and alarms as JSON, snapshots by size
mosquitto_sub -h 127.0.0.1 -p "$PORT" -q 1 -v -t 'towerwatch/+/status' -t 'towerwatch/+/alarm' &
mosquitto_sub -h 127.0.0.1 -p "$PORT" -q 1 -t 'towerwatch/+/alarm/+/snapshot' \
  -F '%t <JPEG snapshot, %l bytes>' &

echo "== simulated tower: $SCENARIO at ${SPEED}x" >&2
.venv/bin/towerwatch simulate tower --config config/simulated.yaml --scenario "$SCENARIO" \
  --speed "$SPEED" --log-level warning 2>"$work/tower.log" &
sleep 2

echo "== daemon: towerwatch run for ${DURATION} s of tower time (broker on port $PORT)" >&2
.venv/bin/towerwatch run --config config/simulated.yaml --set mqtt.port="$PORT" \
  --set storage.state_dir="$work/state" --duration "$DURATION" --log-level info
sleep 1
echo "== done: the lines above starting with towerwatch/ are what the hub received" >&2
