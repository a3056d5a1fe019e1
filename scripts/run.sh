#!/usr/bin/env bash
# Starts the whole system on this machine with demo cameras: four looping
# RTSP cameras that ingest pulls, one field encoder that pushes to ingest,
# the ingest and the SFU with the configs in configs/, then prints the wall's
# address with a viewer token. Ctrl-C stops everything gracefully: the
# segments being written are closed and uploaded to both sites, and it says
# whether everything stopped cleanly.
#
# The demo keeps its recordings for 15 minutes at each site, so data/ stays
# bounded (about 1 GB with the demo cameras).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p data .run

demo_retention=${DEMO_RETENTION:-15m}
export FV_SFU_RECORD_PRIMARY_RETENTION=$demo_retention FV_SFU_RECORD_OFFSITE_RETENTION=$demo_retention
export FV_INGEST_RECORD_PRIMARY_RETENTION=$demo_retention FV_INGEST_RECORD_OFFSITE_RETENTION=$demo_retention
export FV_SFU_RECORD_RETENTION_INTERVAL=1m FV_INGEST_RECORD_RETENTION_INTERVAL=1m

. scripts/run-lib.sh

# the demo cameras stand at the four corners of a scene, for the map.
positions=("25.0380, 121.5630" "25.0380, 121.5645" "25.0370, 121.5645" "25.0370, 121.5630")
cameras='['
for i in 1 2 3 4; do
	cameras+="{name: cam$i, url: \"rtsp://127.0.0.1:8555/cam$i\", transport: tcp, label: \"demo camera $i\", position: {lat: ${positions[i-1]%%,*}, lon: ${positions[i-1]##*, }}},"
done
cameras+=']'

start democam bin/democam -listen 127.0.0.1:8555 -cameras 4
# the console's Cameras page reaches ingest's cameras API through the SFU.
FV_SFU_INGEST_API='["http://127.0.0.1:9997"]' start sfu bin/sfu -config configs/sfu.yml
wait_port 8889 sfu
FV_INGEST_CAMERAS="$cameras" start ingest bin/ingest -config configs/ingest.yml
wait_port 9997 ingest
encoder_token=$(bin/ingest token -role camera -publish field1 -sub field-encoder-1 -ttl 24h)
# the token goes by the environment: other users can read a process's arguments.
DEMOCAM_PUSH_PASSWORD=$encoder_token start field1 bin/democam -push "rtsp://encoder@127.0.0.1:8554/field1"

wall_token=$(bin/sfu token -role wall -view '*' -sub eoc-wall -ttl 12h)
operator_token=$(bin/sfu token -role operator -view '*' -sub operator -ttl 12h)
commander_token=$(bin/sfu token -role commander -view '*' -room incident-1 -room-publish -room-subscribe -sub commander -ttl 12h)
operator_call_token=$(bin/sfu token -role operator -view '*' -room incident-1 -room-publish -room-subscribe -sub eoc-operator -ttl 12h)
reviewer_token=$(bin/sfu token -role reviewer -sub reviewer -ttl 12h)
responder_token=$(bin/sfu token -role responder -publish 'report-{sub}-*' -view 'report-*' -sub responder1 -ttl 12h)
host=$(hostname -I 2>/dev/null | awk '{print $1}')
cat <<MSG

  EOC wall:      http://127.0.0.1:8889/?token=${wall_token}
$( [ -n "$host" ] && echo "  on the LAN:    http://${host}:8889/?token=${wall_token}" )
  Call (field commander): http://127.0.0.1:8889/call.html?room=incident-1&token=${commander_token}
  Call (EOC operator):    http://127.0.0.1:8889/call.html?room=incident-1&token=${operator_call_token}
  Review:        http://127.0.0.1:8889/review.html?sources=cam1,cam2,cam3,cam4&token=${reviewer_token}
  RTSP players:  ffplay -rtsp_transport tcp "rtsp://127.0.0.1:8554/cam1?token=${wall_token}"
  Map:           http://127.0.0.1:8889/map.html?token=${operator_token}
  Report (phone): http://127.0.0.1:8889/report.html?token=${responder_token}
                 (a phone needs https or localhost for its camera and position)
  Cameras:       http://127.0.0.1:8889/cameras.html?token=${operator_token}
                 (add, edit, disable, remove pulled cameras; kept in data/cameras.json)
  Source states: curl -H "Authorization: Bearer ${operator_token}" http://127.0.0.1:9997/v1/sources
  Recording:     curl -H "Authorization: Bearer ${operator_token}" http://127.0.0.1:9997/v1/recording
                 segments in data/recordings/{primary,offsite}/rec/incident/<source>/..., kept ${demo_retention}
  Logs:          .run/*.log        Audit: data/audit-*.log (bin/sfu audit verify data/audit-sfu.log)

  Cameras cam1-cam4 are pulled from the demo RTSP server; field1 is pushed like a 4G encoder.
  Press Ctrl-C to stop.

MSG
wait_any
