#!/usr/bin/env bash
# Starts the whole system on this machine with demo cameras: four looping
# RTSP cameras that ingest pulls, one field encoder that pushes to ingest,
# the ingest and the SFU with the configs in configs/, then prints the wall's
# address with a viewer token. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p data .run

pids=()
stop() {
	trap - INT TERM EXIT
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap stop INT TERM EXIT

start() { # name, command...
	local name=$1
	shift
	"$@" >".run/$name.log" 2>&1 &
	pids+=($!)
}

wait_port() { # port, process name
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "run: $2 did not come up; see .run/$2.log:" >&2
	tail -n 20 ".run/$2.log" >&2
	exit 1
}

cameras='['
for i in 1 2 3 4; do
	cameras+="{name: cam$i, url: \"rtsp://127.0.0.1:8555/cam$i\", transport: tcp},"
done
cameras+=']'

start democam bin/democam -listen 127.0.0.1:8555 -cameras 4
start sfu bin/sfu -config configs/sfu.yml
wait_port 8889 sfu
FV_INGEST_CAMERAS="$cameras" start ingest bin/ingest -config configs/ingest.yml
wait_port 9997 ingest
encoder_token=$(bin/ingest token -role camera -publish field1 -sub field-encoder-1 -ttl 24h)
start field1 bin/democam -push "rtsp://encoder:${encoder_token}@127.0.0.1:8554/field1"

wall_token=$(bin/sfu token -role wall -view '*' -sub eoc-wall -ttl 12h)
operator_token=$(bin/sfu token -role operator -view '*' -sub operator -ttl 12h)
commander_token=$(bin/sfu token -role commander -view '*' -room incident-1 -room-publish -room-subscribe -sub commander -ttl 12h)
operator_call_token=$(bin/sfu token -role operator -view '*' -room incident-1 -room-publish -room-subscribe -sub eoc-operator -ttl 12h)
host=$(hostname -I 2>/dev/null | awk '{print $1}')
cat <<MSG

  EOC wall:      http://127.0.0.1:8889/?token=${wall_token}
$( [ -n "$host" ] && echo "  on the LAN:    http://${host}:8889/?token=${wall_token}" )
  Call (field commander): http://127.0.0.1:8889/call.html?room=incident-1&token=${commander_token}
  Call (EOC operator):    http://127.0.0.1:8889/call.html?room=incident-1&token=${operator_call_token}
  RTSP players:  ffplay -rtsp_transport tcp "rtsp://127.0.0.1:8554/cam1?token=${wall_token}"
  Source states: curl -H "Authorization: Bearer ${operator_token}" http://127.0.0.1:9997/v1/sources
  Recording:     curl -H "Authorization: Bearer ${operator_token}" http://127.0.0.1:9997/v1/recording
                 segments in data/recordings/{primary,offsite}/rec/incident/<source>/...
  Logs:          .run/*.log        Audit: data/audit-*.log

  Cameras cam1-cam4 are pulled from the demo RTSP server; field1 is pushed like a 4G encoder.
  Press Ctrl-C to stop.

MSG
wait -n "${pids[@]}" || true
echo "run: a process stopped; see .run/*.log" >&2
