# Process control shared by run.sh and run-cluster.sh (sourced): start
# processes with their logs in .run/, stop them in reverse order reporting
# how each ended, and wait for a port.

declare -A pid=()
order=() # start order; stopped in reverse

start() { # name, command...
	local name=$1
	shift
	"$@" >".run/$name.log" 2>&1 &
	pid[$name]=$!
	order+=("$name")
}

# stop_all stops the processes in reverse start order (field encoders,
# ingests, SFUs, cameras), each with SIGTERM, and reports how each ended.
stop_all() {
	trap - INT TERM EXIT
	local why=$1 failed=0 name code i
	[[ $why == interrupt ]] && printf '\nrun: stopping; recordings being written are closed and uploaded to both sites...\n'
	for ((i = ${#order[@]} - 1; i >= 0; i--)); do
		name=${order[i]}
		kill -TERM "${pid[$name]}" 2>/dev/null || true
		code=0
		wait "${pid[$name]}" 2>/dev/null || code=$?
		case $name in
		ingest* | sfu*)
			if [[ $code -ne 0 ]]; then
				echo "run: $name exited with status $code; see .run/$name.log" >&2
				failed=1
			elif line=$(grep -E 'stopped (cleanly|;)' ".run/$name.log" | tail -n 1) && [[ -n $line ]]; then
				echo "run: $name: $(sed -E 's/.*msg="?([^"]*)"?.*/\1/' <<<"$line")"
				grep -q 'stopped cleanly' <<<"$line" || failed=1
			fi
			;;
		esac
	done
	if [[ $why == interrupt && $failed -eq 0 ]]; then
		echo "run: everything stopped cleanly"
	elif [[ $failed -ne 0 ]]; then
		echo "run: not everything stopped cleanly; see .run/*.log" >&2
		return 1
	fi
}
trap 'stop_all interrupt; exit $?' INT TERM
trap 'stop_all exit' EXIT

wait_port() { # port, process name
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "run: $2 did not come up; see .run/$2.log:" >&2
	tail -n 20 ".run/$2.log" >&2
	exit 1
}

# wait_any returns when one of the processes ends by itself, naming it, and
# exits with status 1 (the EXIT trap stops the others).
wait_any() {
	local code=0 name
	wait -n "${pid[@]}" || code=$?
	for name in "${order[@]}"; do
		if ! kill -0 "${pid[$name]}" 2>/dev/null; then
			echo "run: $name stopped by itself (status $code); see .run/$name.log" >&2
			break
		fi
	done
	exit 1
}
