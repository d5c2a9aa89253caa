#!/usr/bin/env bash
# broker.sh makes a RabbitMQ broker answer at AMQP_URL, trying in order:
#
#   1. one already answers          → nothing to do
#   2. a Docker engine answers      → docker compose up -d rabbitmq
#   3. rabbitmq-server is installed → rabbitmq-server -detached
#   4. Debian/Ubuntu and root       → apt-get install rabbitmq-server, then 3
#   5. none of these                → one line saying what to install, exit 1
#
# Then, when the broker is on this machine, it makes the management API (and
# the broker's own Prometheus metrics) answer: rabbitmq-plugins enable
# rabbitmq_management rabbitmq_prometheus. The forwarder bounds the main queue
# with a policy through that API, and operators look at the queues there.
# Failing that, it says how, and goes on: relay runs without it.
#
# It is idempotent, says what it did on stderr, starts nothing but the broker
# and enables nothing else (no boot services). Exit status 0 means an AMQP
# connection.start came back from AMQP_URL's host:port.
#
# Usage: scripts/broker.sh           make the broker available
#        scripts/broker.sh --check   only report whether it answers (exit 0/1)
#
# Shared by `make run`, `make test` and .ci/run.
set -euo pipefail

AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}
BROKER_WAIT=${BROKER_WAIT:-60}               # seconds to wait for a started broker
BROKER_AUTO_INSTALL=${BROKER_AUTO_INSTALL:-1} # 0 forbids step 4
BROKER_MANAGEMENT=${BROKER_MANAGEMENT:-1}     # 0: leave the plugins alone
MANAGEMENT_PORT=${MANAGEMENT_PORT:-15672}
PROMETHEUS_PORT=${PROMETHEUS_PORT:-15692}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf 'broker.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# parse_url sets scheme, host and port from AMQP_URL
# (amqp[s]://user:pass@host:port/vhost, host may be [ipv6]).
parse_url() {
	local rest=$AMQP_URL
	scheme=amqp
	case $rest in
	amqp://*) rest=${rest#amqp://} ;;
	amqps://*) rest=${rest#amqps://} scheme=amqps ;;
	*) die "AMQP_URL=$AMQP_URL: want amqp://user:pass@host:port/vhost" ;;
	esac
	rest=${rest%%/*} # drop /vhost
	rest=${rest%%\?*} # drop ?query
	rest=${rest##*@} # drop user:pass@
	if [[ $rest == \[* ]]; then # [::1]:5672
		host=${rest%%]*}
		host=${host#[}
		rest=${rest#*]}
		port=${rest#:}
	elif [[ $rest == *:* ]]; then
		host=${rest%:*}
		port=${rest##*:}
	else
		host=$rest
		port=
	fi
	host=${host:-localhost}
	if [[ -z $port ]]; then
		if [[ $scheme == amqps ]]; then port=5671; else port=5672; fi
	fi
	[[ $port =~ ^[0-9]+$ ]] || die "AMQP_URL=$AMQP_URL: port $port is not a number"
}

# answers reports whether an AMQP 0-9-1 broker answers at host:port: it sends
# the protocol header and expects a method frame (type 1, connection.start)
# back. For amqps a TCP connect has to do: the handshake would need TLS.
# timeout bounds the connect, which /dev/tcp cannot.
# shellcheck disable=SC2016 # the probe expands its own positional parameters
probe='
	exec 3<>"/dev/tcp/$1/$2" || exit 1
	[[ $3 == amqps ]] && exit 0
	printf "AMQP\x00\x00\x09\x01" >&3
	LC_ALL=C IFS= read -r -N 1 -t 4 -u 3 frame || exit 1
	[[ $frame == $(printf "\x01") ]]
'
answers() {
	timeout 5 bash -c "$probe" probe "$host" "$port" "$scheme" 2>/dev/null
}

# wait_for polls until the broker answers or BROKER_WAIT seconds pass.
wait_for() {
	local what=$1 start=$SECONDS
	say "waiting up to ${BROKER_WAIT}s for $what at $host:$port"
	until answers; do
		((SECONDS - start < BROKER_WAIT)) || die "$what did not answer at $host:$port within ${BROKER_WAIT}s"
		sleep 1
	done
	say "RabbitMQ answers at $host:$port ($what, after $((SECONDS - start))s)"
}

is_local() {
	case $host in
	localhost | 127.* | ::1 | 0.0.0.0) return 0 ;;
	*) return 1 ;;
	esac
}

compose() {
	if docker compose version >/dev/null 2>&1; then
		docker compose -f "$root/docker-compose.yml" "$@"
	elif command -v docker-compose >/dev/null; then
		docker-compose -f "$root/docker-compose.yml" "$@"
	else
		return 127
	fi
}

# find_rabbitmq_server prints the path of rabbitmq-server; Debian puts it in
# /usr/sbin, which is not on every user's PATH.
find_rabbitmq_server() {
	command -v rabbitmq-server 2>/dev/null && return
	[[ -x /usr/sbin/rabbitmq-server ]] && echo /usr/sbin/rabbitmq-server && return
	return 1
}

# as_root runs its arguments as root: directly, or through password-less sudo.
as_root() {
	if ((EUID == 0)); then
		"$@"
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo -n "$@"
	else
		return 126
	fi
}

start_local() {
	local server=$1
	say "starting the local RabbitMQ: $server -detached"
	if ((EUID != 0)) && [[ $(id -un) != rabbitmq ]] && ! as_root true 2>/dev/null; then
		die "RabbitMQ is installed but not running, and starting it needs root: sudo $server -detached"
	fi
	# It may fail because a node is already booting; then the wait decides.
	as_root "$server" -detached >&2 || say "$server -detached exited $? (a node may already be starting)"
	wait_for "the local rabbitmq-server"
}

# management_answers reports whether something accepts connections on the
# management port and on the broker's own metrics port (rabbitmq_prometheus).
management_answers() {
	local p
	for p in "$MANAGEMENT_PORT" "$PROMETHEUS_PORT"; do
		timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' probe "$host" "$p" 2>/dev/null || return 1
	done
}

# ensure_management enables the management plugin of a local broker whose
# management API does not answer yet. It never fails the script.
ensure_management() {
	((BROKER_MANAGEMENT)) || return 0
	management_answers && return 0
	local how="rabbitmq-plugins enable rabbitmq_management rabbitmq_prometheus"
	if ! is_local || ! command -v rabbitmq-plugins >/dev/null || ! as_root true 2>/dev/null; then
		say "the management API (:$MANAGEMENT_PORT) or the broker's metrics (:$PROMETHEUS_PORT) do not answer at $host: without the first the forwarder cannot bound the main queue (QUEUE_MAX_LENGTH) and there is no UI; on the broker's machine run: sudo $how"
		return 0
	fi
	say "enabling the management API: $how"
	if ! as_root rabbitmq-plugins enable rabbitmq_management rabbitmq_prometheus >&2; then
		say "warning: $how failed; relay runs without it"
		return 0
	fi
	local start=$SECONDS
	until management_answers; do
		if ((SECONDS - start >= BROKER_WAIT)); then
			say "warning: the management API (:$MANAGEMENT_PORT) and metrics (:$PROMETHEUS_PORT) did not both answer at $host within ${BROKER_WAIT}s"
			return 0
		fi
		sleep 1
	done
	say "management UI at http://$host:$MANAGEMENT_PORT/ (the user and password of AMQP_URL; guest/guest by default); broker metrics at http://$host:$PROMETHEUS_PORT/metrics"
}

ok() {
	ensure_management
	exit 0
}

parse_url

if answers; then
	[[ ${1:-} == --check ]] && exit 0
	say "RabbitMQ already answers at $host:$port"
	ok
fi
if [[ ${1:-} == --check ]]; then
	say "no RabbitMQ answers at $host:$port"
	exit 1
fi

is_local || die "no RabbitMQ answers at $host:$port (from AMQP_URL), and it is not this machine, so nothing can be started here: start it there, or unset AMQP_URL to use a local broker"
[[ $port == 5672 ]] || say "warning: AMQP_URL uses port $port, but a broker started here listens on 5672"

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
	say "a Docker engine answers: docker compose up -d rabbitmq"
	compose up -d rabbitmq || die "docker compose up -d rabbitmq failed (is the compose plugin or docker-compose installed?)"
	wait_for "the rabbitmq container"
	exit 0 # the compose service is the management image
fi

if server=$(find_rabbitmq_server); then
	start_local "$server"
	ok
fi

if ((EUID == 0)) && [[ $BROKER_AUTO_INSTALL == 1 ]] && [[ -f /etc/debian_version ]] && command -v apt-get >/dev/null; then
	say "installing RabbitMQ: apt-get update && apt-get install -y rabbitmq-server"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2 || die "apt-get update failed"
	apt-get install -y -qq rabbitmq-server >&2 || die "apt-get install -y rabbitmq-server failed"
	# The package's postinst may already have started it (where services run).
	if answers; then
		say "RabbitMQ answers at $host:$port (started by the package)"
		ok
	fi
	server=$(find_rabbitmq_server) || die "rabbitmq-server is still not installed after apt-get install"
	start_local "$server"
	ok
fi

die "no RabbitMQ at $host:$port and no way to start one: install Docker (then run make up) or RabbitMQ (Debian/Ubuntu: sudo apt-get install rabbitmq-server), or set AMQP_URL to a running broker"
