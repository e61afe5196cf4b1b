#!/usr/bin/env bash
# Quick start: install, then run the simulated Panshan county (two towers, a daemon each, the
# county hub when present) on a private broker, and print what the hub sees as a reed fire
# appears, is confirmed, triangulated, grows and goes out. DEMO=tower runs one tower alone.
# Every process is checked to be up; a part that fails stops the demo naming it (exit 1).
set -euo pipefail
cd "$(dirname "$0")"

DEMO="${DEMO:-county}"                  # county | tower
case "$DEMO" in
  county) default_scenario=benchmarks/scenarios/county-2towers.yaml ;;
  tower) default_scenario=benchmarks/scenarios/county-1tower.yaml ;;
  *) echo "demo: DEMO=$DEMO: use county or tower" >&2; exit 2 ;;
esac
SCENARIO="${DEMO_SCENARIO:-$default_scenario}"
SPEED="${DEMO_SPEED:-2}"                # tower clock speed
TIMEOUT="${DEMO_TIMEOUT:-420}"          # wall seconds for the fire's whole story
HUB="${DEMO_HUB:-auto}"                 # auto | 0: run the county hub when it is installed
KEEP="${DEMO_KEEP:-0}"                  # 1: keep everything running afterwards (Ctrl-C ends it)
OUT="${DEMO_OUT:-var/demo/$(date -u +%Y%m%dT%H%M%SZ)-$$}"

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
if [ "${#need_apt[@]}" -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

if [ -n "${DEMO_PYTHON:-}" ]; then      # an environment that already has towerwatch's needs
  PY=$DEMO_PYTHON
else
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[hub]"
  PY=.venv/bin/python
fi
export NUMBA_CACHE_DIR="$PWD/.cache/numba"
TW=("$PY" -m edge.cli)                  # this checkout's code, whatever the environment

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
declare -A PID=()                       # part name → pid
ORDER=()                                # start order, for a stop in reverse

WATCH=""
TAIL=""
cleanup() {
  local i
  for i in $WATCH $TAIL; do kill "$i" 2>/dev/null || true; done
  for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do
    kill "${PID[${ORDER[i]}]}" 2>/dev/null || true
    wait "${PID[${ORDER[i]}]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "== $*" >&2; }

start() {                               # start NAME CMD…: in the background, log in $OUT/NAME.log
  local name=$1; shift
  "$@" >"$OUT/$name.log" 2>&1 &
  PID[$name]=$!
  ORDER+=("$name")
}

failed() {                              # failed NAME WHY: the part's log, then exit 1
  echo "demo: $1 $2; its log ($OUT/$1.log) ends:" >&2
  tail -n 25 "$OUT/$1.log" >&2 || true
  echo "demo: FAILED: $1 (all logs in $OUT)" >&2
  exit 1
}

check_up() {                            # every part still running?
  local name code
  for name in "${ORDER[@]}"; do
    if ! kill -0 "${PID[$name]}" 2>/dev/null; then
      code=0; wait "${PID[$name]}" || code=$?
      failed "$name" "exited with code $code"
    fi
  done
}

wait_until() {                          # wait_until NAME SECONDS TEST…: poll TEST while NAME runs
  local name=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    check_up
    [ "$SECONDS" -lt "$deadline" ] || failed "$name" "is not up after ${seconds} s"
    sleep 0.5
  done
}

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
listens() { "$PY" -c "import socket, sys; socket.create_connection(('127.0.0.1', $1), 0.5)" 2>/dev/null; }
in_log() { grep -q "$2" "$OUT/$1.log" 2>/dev/null; }

say "demo $DEMO: $SCENARIO at ${SPEED}x; logs and messages in $OUT"

MQTT_PORT=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$MQTT_PORT" >"$OUT/mosquitto.conf"
start broker "$MOSQUITTO" -c "$OUT/mosquitto.conf"
wait_until broker 10 listens "$MQTT_PORT"
say "broker up on 127.0.0.1:$MQTT_PORT"

start county "${TW[@]}" simulate county --scenario "$SCENARIO" --speed "$SPEED" --port-base 0 \
  --run-dir "$OUT/run" --endpoints-file "$OUT/county.json" --log-level warning
wait_until county 120 test -s "$OUT/county.json"
mapfile -t TOWERS < <("$PY" -c 'import json, sys; print(*json.load(open(sys.argv[1]))["towers"], sep="\n")' "$OUT/county.json")
say "simulated towers up: ${TOWERS[*]}"

WITH_HUB=0
if [ "$HUB" != 0 ] && [ -f config/county/hub.yaml ] && "${TW[@]}" hub --help >/dev/null 2>&1; then
  WITH_HUB=1
elif [ "$HUB" != 0 ]; then
  say "no county hub installed: showing each tower's alarms as the broker carries them"
fi

# The readable story: one line per change, until every tower has confirmed and cleared the
# fire (and, with the hub and several towers, the hub has triangulated and cleared it).
until_args=(--until-cleared "$(IFS=,; echo "${TOWERS[*]}")" --timeout "$TIMEOUT")
[ "$WITH_HUB" = 1 ] && [ "${#TOWERS[@]}" -gt 1 ] && until_args+=(--hub)
: >"$OUT/watch.log"                     # exists before tail looks for it
"${TW[@]}" simulate watch --mqtt-port "$MQTT_PORT" --raw "$OUT/messages.log" "${until_args[@]}" \
  >"$OUT/watch.log" 2>&1 &
WATCH=$!
tail -n +1 -f "$OUT/watch.log" &
TAIL=$!

MAP_URL=""
if [ "$WITH_HUB" = 1 ]; then
  HTTP_PORT=$(free_port)
  start hub "${TW[@]}" hub --config config/county/hub.yaml --set mqtt.port="$MQTT_PORT" \
    --set http.port="$HTTP_PORT" --set store.sqlite_path="$OUT/hub.sqlite3" \
    --set http.anonymous_read=true    # a local demo: the map reads without an account
  wait_until hub 60 listens "$HTTP_PORT"
  MAP_URL="http://127.0.0.1:$HTTP_PORT/"
  say "hub up: the duty officer's map is at $MAP_URL"
fi

for tower in "${TOWERS[@]}"; do
  mapfile -t args < <("$PY" -c '
import json, sys
t = json.load(open(sys.argv[1]))["towers"][sys.argv[2]]
print("--config", t["config"], sep="\n")
for s in t["daemon_sets"]:
    print("--set", s, sep="\n")' "$OUT/county.json" "$tower")
  start "daemon-$tower" "${TW[@]}" run "${args[@]}" --set mqtt.port="$MQTT_PORT" --log-level info
done
for tower in "${TOWERS[@]}"; do
  wait_until "daemon-$tower" 180 in_log "daemon-$tower" '"uplink_connected"'
done
say "daemons up and connected: ${TOWERS[*]}; waiting for the fire (up to $TIMEOUT s)"

while kill -0 "$WATCH" 2>/dev/null; do
  check_up
  sleep 1
done
code=0; wait "$WATCH" || code=$?
sleep 0.5
if [ "$code" -ne 0 ]; then
  echo "demo: FAILED: the fire's story did not complete (all logs in $OUT)" >&2
  exit 1
fi
say "done: readable lines above (also $OUT/watch.log), every message in $OUT/messages.log"
say "each process's log: $(cd "$OUT" && echo ./*.log) in $OUT"
if [ "$KEEP" = 1 ]; then
  say "still running${MAP_URL:+: the map is at $MAP_URL}; Ctrl-C stops it"
  while true; do check_up; sleep 1; done
fi
[ -n "$MAP_URL" ] && say "the hub's map was at $MAP_URL (DEMO_KEEP=1 keeps it running)"
exit 0
