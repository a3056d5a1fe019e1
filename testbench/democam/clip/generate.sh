#!/usr/bin/env bash
# Generates the looping demo clip that testbench/democam embeds:
#   video.h264  H.264 constrained baseline, Annex-B, 640x360, 25 fps, 6 s (150 frames),
#               an IDR every 2 s with SPS/PPS in-band before each IDR, testsrc2 pattern
#               with the clip time and frame number drawn in.
#   audio.ulaw  G.711 µ-law, 8 kHz mono, 6 s: a 1 kHz beep for 120 ms at the start of every second.
# Both files are committed; run this only to change the clip (needs ffmpeg with libx264,
# and fonts-liberation for the drawn text). Usage: testbench/democam/clip/generate.sh
set -euo pipefail

cd "$(dirname "$0")"

font=/usr/share/fonts/truetype/liberation/LiberationMono-Bold.ttf
filter="testsrc2=size=640x360:rate=25:duration=6"
filters=$(ffmpeg -hide_banner -filters 2>/dev/null || true)
if [[ -f "$font" && "$filters" == *" drawtext "* ]]; then
	filter+=",drawtext=fontfile=${font}:fontsize=36:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=8"
	filter+=":x=(w-text_w)/2:y=h-text_h-24:text='%{pts\\:hms}  frame %{eif\\:n\\:d\\:3}'"
else
	echo "generate.sh: drawtext or $font unavailable; the clip will have no frame counter" >&2
fi

ffmpeg -hide_banner -loglevel error -y \
	-f lavfi -i "$filter" \
	-frames:v 150 -pix_fmt yuv420p \
	-c:v libx264 -profile:v baseline -level:v 3.0 -preset medium \
	-b:v 450k -maxrate 600k -bufsize 600k \
	-g 50 -keyint_min 50 -sc_threshold 0 -bf 0 \
	-x264-params repeat-headers=1:slices=1 \
	-an -f h264 video.h264

ffmpeg -hide_banner -loglevel error -y \
	-f lavfi -i "aevalsrc='if(lt(mod(t,1),0.12),0.5*sin(2*PI*1000*t),0)':s=8000:c=mono:d=6" \
	-c:a pcm_mulaw -f mulaw audio.ulaw

ls -l video.h264 audio.ulaw
