#!/usr/bin/env bash
# Starts a cluster on this machine: a NATS server with JetStream, three SFU
# nodes and two ingests sharing the four demo cameras (each camera pulled by
# one ingest; the other takes it over when that one stops or dies), then
# prints each node's console address with a viewer token. Ctrl-C stops
# everything gracefully.
#
# Try it: kill one ingest (kill <pid> from .run/) and watch its cameras come
# back through the other; drain an SFU with
#   curl -X POST -H "Authorization: Bearer $operator" -d '{"draining":true}' http://127.0.0.1:8890/v1/cluster
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p data/cluster .run

. scripts/run-lib.sh

demo_retention=${DEMO_RETENTION:-15m}
nats_port=4222

# node_env ROLE NAME PREFIX: the settings one node of the cluster has of its own.
node_env() {
	local role=$1 name=$2 p=$3 dir=data/cluster/$2
	mkdir -p "$dir"
	echo "${p}_CLUSTER_NATS=[nats://127.0.0.1:$nats_port]" "${p}_CLUSTER_NODE=$name" "${p}_CLUSTER_SITE=demo" \
		"${p}_AUDIT_FILE=$dir/audit.log" "${p}_AUDIT_SIGNING_KEY_FILE=$dir/audit.key" \
		"${p}_RECORD_SPOOL_DIR=$dir/spool" "${p}_RECORD_PRIMARY_RETENTION=$demo_retention" \
		"${p}_RECORD_OFFSITE_RETENTION=$demo_retention" "${p}_RECORD_RETENTION_INTERVAL=1m"
}

start nats .tools/bin/nats-server -a 127.0.0.1 -p "$nats_port" -js -sd data/cluster/nats
wait_port "$nats_port" nats

start democam bin/democam -listen 127.0.0.1:8555 -cameras 4
cameras='['
for i in 1 2 3 4; do
	cameras+="{name: cam$i, url: \"rtsp://127.0.0.1:8555/cam$i\", transport: tcp, label: \"demo camera $i\"},"
done
cameras+=']'

sfus=()
for n in 1 2 3; do
	http=$((8888 + n)) ice=$((8188 + n))
	# shellcheck disable=SC2046 # node_env's words are the settings
	start "sfu-$n" env $(node_env sfu "sfu-$n" FV_SFU) FV_SFU_HTTP_ADDRESS="127.0.0.1:$http" \
		FV_SFU_WEBRTC_UDP_ADDRESS="127.0.0.1:$ice" FV_SFU_CLUSTER_ADVERTISE="http://127.0.0.1:$http" \
		FV_SFU_INGEST_API='["http://127.0.0.1:9997", "http://127.0.0.1:9998"]' \
		bin/sfu -config configs/sfu.yml
	wait_port "$http" "sfu-$n"
	sfus+=("$http")
done

for n in 1 2; do
	api=$((9996 + n)) rtsp=$((8553 + n * 10))
	# shellcheck disable=SC2046
	start "ingest-$n" env $(node_env ingest "ingest-$n" FV_INGEST) FV_INGEST_API_ADDRESS="127.0.0.1:$api" \
		FV_INGEST_RTSP_ADDRESS="127.0.0.1:$rtsp" FV_INGEST_RTSP_UDP_RTP_ADDRESS='""' FV_INGEST_RTSP_UDP_RTCP_ADDRESS='""' \
		FV_INGEST_CLUSTER_ADVERTISE="http://127.0.0.1:$api" FV_INGEST_UPLINK_URL='""' \
		FV_INGEST_CAMERAS="$cameras" FV_INGEST_CAMERAS_FILE="data/cluster/ingest-$n/cameras.json" \
		bin/ingest -config configs/ingest.yml
	wait_port "$api" "ingest-$n"
done

wall_token=$(bin/sfu token -role wall -view '*' -sub eoc-wall -ttl 12h)
operator_token=$(bin/sfu token -role operator -view '*' -sub operator -ttl 12h)
cat <<MSG

  NATS:            nats://127.0.0.1:$nats_port (JetStream in data/cluster/nats)
$(for p in "${sfus[@]}"; do echo "  SFU $((p - 8888)) wall:      http://127.0.0.1:$p/?token=${wall_token}"; done)
  Cluster nodes:   curl -H "Authorization: Bearer ${operator_token}" http://127.0.0.1:8889/v1/cluster
  Cameras:         http://127.0.0.1:8889/cameras.html?token=${operator_token}
                   (each camera is live on one ingest and on standby on the other)
  Ingests:         curl -H "Authorization: Bearer ${operator_token}" http://127.0.0.1:9997/v1/sources (and :9998)
  Logs:            .run/*.log

  Ingest spreads the cameras over the three SFUs; each wall shows them all (relayed).
  Press Ctrl-C to stop.

MSG
wait_any
