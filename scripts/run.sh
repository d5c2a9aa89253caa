#!/usr/bin/env bash
# run.sh is `make run`: the whole relay on this machine, for people.
#
# It makes the broker available (scripts/broker.sh), builds bin/, then starts
# catering-stub, forwarder and ingress with human-readable logs, each line
# prefixed with the service's name and copied to .run/<name>.log. Ctrl-C stops
# the services it started, ingress first and the stub last, so the forwarder
# can finish in-flight deliveries. The broker keeps running: it holds the
# stored messages, and it may have been running before.
#
# Security, as much as a demo on one machine takes: the forwarder signs every
# delivery with a secret made for this run (never printed, never written to
# disk) and the stub verifies it; /metrics is on admin addresses bound to
# 127.0.0.1; the ingress runs without API keys (INGRESS_API_KEYS_FILE unset),
# so the seed's curl works as it is, and it says so when it starts.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}
export LOG_FORMAT=${LOG_FORMAT:-text}
export STUB_ADDR=${STUB_ADDR:-127.0.0.1:8280}
export FORWARDER_ADMIN_ADDR=${FORWARDER_ADMIN_ADDR:-127.0.0.1:8291}
export INGRESS_ADDR=${INGRESS_ADDR:-:8290}
export INGRESS_ADMIN_ADDR=${INGRESS_ADMIN_ADDR:-127.0.0.1:8292}
RUN_START_TIMEOUT=${RUN_START_TIMEOUT:-30} # seconds for a service to listen
RUN_STOP_TIMEOUT=${RUN_STOP_TIMEOUT:-30}   # seconds for a service to stop before SIGKILL; above DELIVERY_TIMEOUT and SHUTDOWN_TIMEOUT

run_dir=.run
bin_dir=bin

say() { printf 'run.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# dial_addr turns a listen address (":8290", "0.0.0.0:8290", "host:8290")
# into one to connect to.
dial_addr() {
	local host=${1%:*} port=${1##*:}
	case $host in "" | 0.0.0.0 | "[::]") host=127.0.0.1 ;; esac
	printf '%s:%s' "$host" "$port"
}

listening() {
	local addr
	addr=$(dial_addr "$1")
	# shellcheck disable=SC2016 # the inner bash expands $1 and $2
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' listening "${addr%:*}" "${addr##*:}" 2>/dev/null
}

stub_dial=$(dial_addr "$STUB_ADDR")
export CATERING_SERVICE_EP=${CATERING_SERVICE_EP:-http://$stub_dial/catering}
ingress_port=${INGRESS_ADDR##*:}

# The Standard Webhooks secret of this run: whsec_ and 32 random bytes in
# base64. A CATERING_SIGNING_SECRET of yours (a real backend's) wins; the stub
# verifies with the same secret unless STUB_SIGNING_SECRET says otherwise.
# Neither is exported: each goes to its one service only (see start).
signing_secret=${CATERING_SIGNING_SECRET:-whsec_$(head -c 32 /dev/urandom | base64)}
stub_secret=${STUB_SIGNING_SECRET:-$signing_secret}
export -n CATERING_SIGNING_SECRET STUB_SIGNING_SECRET

for addr in "$STUB_ADDR" "$FORWARDER_ADMIN_ADDR" "$INGRESS_ADDR" "$INGRESS_ADMIN_ADDR"; do
	if listening "$addr"; then
		die "something already listens on $(dial_addr "$addr") (another make run, or make up? stop it, or change STUB_ADDR, FORWARDER_ADMIN_ADDR, INGRESS_ADDR, INGRESS_ADMIN_ADDR)"
	fi
done

scripts/broker.sh
"${MAKE:-make}" --no-print-directory build
mkdir -p "$run_dir"

if [[ -t 1 && -z ${NO_COLOR:-} ]]; then
	colors=($'\e[35m' $'\e[33m' $'\e[36m')
	reset=$'\e[0m'
else
	colors=('' '' '')
	reset=
fi

names=() pids=()
stopping=0

# start runs bin/<name> in the background, with the NAME=value pairs after
# its address added to its environment only. They are exported inside a
# subshell, never passed as arguments, so no secret shows in ps. set -m
# gives each service its own process group, so a Ctrl-C in the terminal
# reaches only this script, which then stops the services one at a time
# with a single SIGTERM each. The log prefixer ignores SIGINT so it outlives
# the service and shows its last lines.
set -m
start() {
	local name=$1 addr=$2 label
	shift 2
	local log=$run_dir/$name.log
	printf -v label '%s%-13s|%s ' "${colors[${#names[@]}]}" "$name" "$reset"
	: >"$log"
	(
		(($# == 0)) || export "$@"
		exec "$bin_dir/$name"
	) > >(trap '' INT; tee -a "$log" | sed -u "s/^/$label/") 2>&1 &
	names+=("$name")
	pids+=($!)
	local deadline=$((SECONDS + RUN_START_TIMEOUT))
	until listening "$addr"; do
		kill -0 "$!" 2>/dev/null || die "$name exited during startup; see $log"
		((SECONDS < deadline)) || die "$name does not listen on $(dial_addr "$addr") after ${RUN_START_TIMEOUT}s; see $log"
		sleep 0.2
	done
}

# stop sends SIGTERM to every service still running, newest first, and waits
# for each before the next: the forwarder needs the stub until it is done.
# shellcheck disable=SC2317 # called by the EXIT trap
stop() {
	((stopping)) && return
	stopping=1
	local i pid name deadline force=0
	trap 'force=1; say "second interrupt: killing the services"' INT TERM
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		pid=${pids[i]} name=${names[i]}
		kill -0 "$pid" 2>/dev/null || continue
		say "stopping $name (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || continue
		deadline=$((SECONDS + RUN_STOP_TIMEOUT))
		while kill -0 "$pid" 2>/dev/null; do
			if ((force)); then
				kill -KILL "$pid" 2>/dev/null || true
				break
			fi
			if ((SECONDS >= deadline)); then
				say "$name did not stop within ${RUN_STOP_TIMEOUT}s: SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
				break
			fi
			sleep 0.1
		done
	done
	wait 2>/dev/null || true # let the log prefixers flush
	((${#pids[@]} == 0)) || say "stopped; RabbitMQ keeps running; logs are in $run_dir/"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start catering-stub "$STUB_ADDR" STUB_SIGNING_SECRET="$stub_secret"
start forwarder "$FORWARDER_ADMIN_ADDR" CATERING_SIGNING_SECRET="$signing_secret"
start ingress "$INGRESS_ADDR"
unset signing_secret stub_secret

if [[ -n ${INGRESS_API_KEYS_FILE:-} ]]; then
	auth_note="API keys from INGRESS_API_KEYS_FILE=$INGRESS_API_KEYS_FILE: add --header 'Authorization: Bearer <key>' to the request below."
else
	auth_note="No API keys (INGRESS_API_KEYS_FILE unset): the ingress takes registrations from anyone who reaches :$ingress_port."
fi

# The management UI, on the broker's host: the forwarder puts the queue's
# limit policy through it, and operators look at the queues there.
amqp_rest=${AMQP_URL#*://}
amqp_rest=${amqp_rest%%/*}
amqp_user=guest
[[ $amqp_rest == *@* ]] && amqp_user=${amqp_rest%%:*} && amqp_user=${amqp_user%%@*}
amqp_host=${amqp_rest##*@}
amqp_host=${amqp_host%:*}
amqp_host=${amqp_host:-127.0.0.1}
if listening "$amqp_host:${MANAGEMENT_PORT:-15672}"; then
	ui_note="RabbitMQ management UI: http://$amqp_host:${MANAGEMENT_PORT:-15672}/ (log in as $amqp_user, with AMQP_URL's password; guest/guest by default)"
else
	ui_note="RabbitMQ management UI: not answering at $amqp_host:${MANAGEMENT_PORT:-15672}; on the broker's machine: sudo rabbitmq-plugins enable rabbitmq_management"
fi

cat <<EOF

relay is running: ingress on :$ingress_port, forwarder delivering to $CATERING_SERVICE_EP
$ui_note
Deliveries are signed (Standard Webhooks) with a secret made for this run; the stub verifies them.
$auth_note
Metrics: http://$(dial_addr "$INGRESS_ADMIN_ADDR")/metrics (ingress), http://$(dial_addr "$FORWARDER_ADMIN_ADDR")/metrics (forwarder)

Register a passenger (the seed's request):

curl -X POST 'http://localhost:$ingress_port/catering/register' \\
--header 'Content-Type: application/json' \\
--data-raw '{
 "passengerId": "241241d",
 "class": "first",
 "train": "RLC-5051",
 "departure": {
   "time": "2021-07-16 11:45",
   "station": "King Cross"
 },
 "arrival": {
   "time": "2021-07-16 16:40",
   "station": "Edinburgh"
 },
 "duration": "4h 55m",
 "food": [
   {
     "serving": "lunch",
     "type": "Asian",
     "comments": [
       "Not too spicy"
     ]
   },
   {
     "serving": "snacks",
     "type": "Normal",
     "comments": []
   }
 ]
}'

See what the Catering stub received:

curl -s http://$stub_dial/received

Replay the seed's failing backend: CATERING_SERVICE_EP=http://www.urldoesnotexist.com make run
Ctrl-C stops the services (RabbitMQ keeps running).

EOF

# Run until Ctrl-C, or until a service exits on its own: then stop the rest.
status=0
wait -n "${pids[@]}" || status=$?
((stopping)) && exit "$status"
for i in "${!pids[@]}"; do
	kill -0 "${pids[i]}" 2>/dev/null || say "${names[i]} exited (status $status); stopping the others"
done
exit 1
