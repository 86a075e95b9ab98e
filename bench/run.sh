#!/bin/bash
# make bench: gannetd and Dovecot side by side on one machine, same users, Maildirs, password
# scheme and certificate; every mode against every server configuration, repeated, then one
# table of medians with min-max ranges and the gannetd/Dovecot ratios (bench/report.py).
#
# Environment knobs (defaults are the full run):
#   BUILD=build             where gannetd, gannetctl and gannet-bench are
#   BENCH_DIR=/var/tmp/gannet-bench   corpora and users (generated once, reused), runs/
#   BENCH_REPS=3            repetitions of every figure
#   BENCH_SECONDS=5         length of one sessions run
#   BENCH_IDLE=1000         held connections for the idle memory figure
#   BENCH_IDLE_MAX=10000    connections for the "held without errors" check (gannetd shared)
#   BENCH_SERVERS="gannetd-shared gannetd-perconn dovecot-default dovecot-hp"
#                           also: gannetd-nocache (shared, auth_cache_ttl = 0) and dovecot-hp-cache
#                           (high-perf plus auth_cache_size = 10M): the login figures both ways,
#                           as the two servers' credential caches make logins skip the hash
#   BENCH_SEED=20240501     corpus seed
#   BENCH_FIGURES="..."     only these figures (labels as in results.txt), e.g. "retr_small retr_huge"
#   BENCH_QUIET_WAIT=180    seconds to wait at most for an idle machine before each server's block
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$top" && cd "${BUILD:-build}" && pwd)
bench="$build/gannet-bench"
base=${BENCH_DIR:-/var/tmp/gannet-bench}
reps=${BENCH_REPS:-3}
secs=${BENCH_SECONDS:-5}
idle_n=${BENCH_IDLE:-1000}
idle_max=${BENCH_IDLE_MAX:-10000}
servers=${BENCH_SERVERS:-gannetd-shared gannetd-perconn dovecot-default dovecot-hp}
seed=${BENCH_SEED:-20240501}
figures=${BENCH_FIGURES:-}
quiet_wait=${BENCH_QUIET_WAIT:-180}
conc=16
[ "$idle_max" -le 10000 ] || die "BENCH_IDLE_MAX is at most 10000 (the users there are)"
password=gannet-bench-pw
users_total=10064 # idle users u0.. plus headroom; the first 64 hold the tiny corpus
mailuser=gannetbench

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: Dovecot is started standalone and drops to '$mailuser'"
for f in gannetd gannetctl gannet-bench; do
	[ -x "$build/$f" ] || die "$build/$f missing: run 'make all' first"
done
command -v dovecot >/dev/null || die "dovecot missing: scripts/deps.sh bench installs dovecot-pop3d"

# 10,000 idle connections need descriptors in the client and in the server processes.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((idle_max + 200)) ]; then
	idle_max=$(($(ulimit -n) - 200))
	log "descriptor limit $(ulimit -n): the many-connections check holds $idle_max"
fi

run="$base/runs/$(date +%Y%m%d-%H%M%S)"
results="$run/results.txt"
mkdir -p "$run"
pids=""

# Stop only what this script started, by PID, then wait for it.
stop_pid() {
	local pid=$1 i=0
	kill -TERM "$pid" 2>/dev/null || return 0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	for p in $pids; do stop_pid "$p"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ data (once)

setup_data() {
	id "$mailuser" >/dev/null 2>&1 ||
		useradd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$mailuser"
	mkdir -p "$base/corpus" "$base/tls" "$base/empty"
	chmod 755 "$base" "$base/corpus"
	chmod 555 "$base/empty"
	if [ ! -f "$base/tls/key.pem" ]; then
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=localhost" \
			-keyout "$base/tls/key.pem" -out "$base/tls/cert.pem" 2>/dev/null
		chmod 600 "$base/tls/key.pem"
	fi
	for kind in tiny small big huge; do
		local home="$base/corpus/$kind"
		if [ ! -f "$home/.done-$seed" ]; then
			log "generating corpus $kind (seed $seed)"
			rm -rf "$home"
			mkdir -p "$home"
			"$bench" corpus "$kind" "$seed" "$home/Maildir" >&2
			chown -R "$mailuser:" "$home"
			touch "$home/.done-$seed"
		fi
	done
	if [ ! -f "$base/users.done-$users_total-$seed-r5000" ]; then
		log "creating $users_total users"
		rm -rf "${base:?}/home"
		# SHA512-CRYPT, verified the same way by both servers, at the 5,000 rounds that
		# glibc and 'doveadm pw' use by default. (gannetctl's own default is 656,000
		# rounds: about 250 ms a login, which would measure crypt(3) and nothing else.)
		printf '{SHA512-CRYPT}%s\n' "$(printf '%s\n' "$password" |
			openssl passwd -6 -stdin)" >"$base/hash"
		"$bench" users u "$users_total" "$base/home" "$(cat "$base/hash")" "$base/users.tmp" \
			"$base/corpus/tiny/Maildir/new" 64 >&2
		for kind in small big huge; do
			printf '%s:%s::::%s::\n' "$kind" "$(cat "$base/hash")" "$base/corpus/$kind" \
				>>"$base/users.tmp"
		done
		chown -R "$mailuser:" "$base/home"
		chmod 755 "$base/home"
		chmod 644 "$base/users.tmp"
		mv "$base/users.tmp" "$base/users"
		touch "$base/users.done-$users_total-$seed-r5000"
	fi
}

# Both servers keep their index beside the mail (Dovecot: dovecot.index*, dovecot-uidlist;
# gannetd: gannet.index); a cold bigbox run starts without one.
drop_index() {
	find "$base/corpus/big/Maildir" -maxdepth 1 -type f \
		\( -name 'dovecot*' -o -name 'gannet.index*' \) -delete
}

# ------------------------------------------------------------------ servers

port_plain=0
port_tls=0
server_pid=0

wait_port() {
	local i=0
	while ! "$bench" sessions --port "$1" --concurrency 1 --max-sessions 1 --seconds 2 \
		--user-prefix u --users 1 --password "$password" --label probe >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 50 ] || return 1
		sleep 0.2
	done
}

start_gannetd() {
	local isolation=$2 cache_ttl=${3:-300} dir="$run/$1${rep:+-rep$rep}"
	mkdir -p "$dir/state"
	cat >"$dir/gannetd.conf" <<EOF
# generated by bench/run.sh
listen = 127.0.0.1:$port_plain
listen_tls = 127.0.0.1:$port_tls
tls_cert = $base/tls/cert.pem
tls_key = $base/tls/key.pem
userdb = $base/users
mail_location = %h/Maildir
isolation = $isolation
state_dir = $dir/state
hostname = localhost
login_user = nobody
login_chroot = $base/empty
auth_user = nobody
mail_user = $mailuser
max_sessions = $((idle_max + 1000))
auth_cache_ttl = $cache_ttl
# The corpus has raw UTF-8 in From and Subject; Dovecot (no RFC 6856) sends such messages as they
# are, so gannetd sends the same bytes instead of refusing them with [UTF8] to non-UTF8 clients.
refuse_8bit_headers = no
EOF
	"$build/gannetd" -d -c "$dir/gannetd.conf" 2>"$dir/gannetd.log" &
	server_pid=$!
	pids="$pids $server_pid"
}

start_dovecot() {
	local hp=$2 cache=${3:-no} dir="$run/$1${rep:+-rep$rep}"
	mkdir -p "$dir/base" "$dir/state"
	cat >"$dir/dovecot.conf" <<EOF
# generated by bench/run.sh: Dovecot $(dovecot --version | cut -d' ' -f1), standalone
base_dir = $dir/base
state_dir = $dir/state
log_path = $dir/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <$base/tls/cert.pem
ssl_key = <$base/tls/key.pem
disable_plaintext_auth = no
mail_location = maildir:~/Maildir
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT $base/users
}
userdb {
  driver = passwd-file
  args = $base/users
  default_fields = uid=$mailuser gid=$mailuser
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $port_plain
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = $port_tls
    ssl = yes
  }
EOF
	if [ "$hp" = yes ]; then
		# High-performance mode (doc.dovecot.org "Login processes"): long-lived login
		# processes, one per core, each serving many connections; pop3 processes reused
		# and each serving many sessions.
		cat >>"$dir/dovecot.conf" <<EOF
  # A TLS client costs a login process two descriptors (client and pop3 proxy).
  service_count = 0
  process_min_avail = $(nproc)
  client_limit = 5000
  vsz_limit = 1G
}
service pop3 {
  # 1,000 clients a process outgrow the 256 MB vsz_limit (measured): 100 a process.
  service_count = 0
  process_min_avail = $(nproc)
  client_limit = 100
  process_limit = $((idle_max / 100 + 20))
  vsz_limit = 1G
}
service anvil {
  client_limit = $((idle_max + 2000))
}
service auth {
  client_limit = $((idle_max + 2000))
}
default_client_limit = $((idle_max + 2000))
EOF
	else
		echo "}" >>"$dir/dovecot.conf"
	fi
	if [ "$cache" = yes ]; then
		# Dovecot's auth cache (off by default): the same TTL as gannetd's default.
		cat >>"$dir/dovecot.conf" <<EOF
auth_cache_size = 10M
auth_cache_ttl = 5 mins
EOF
	fi
	dovecot -F -c "$dir/dovecot.conf" 2>"$dir/stderr.log" &
	server_pid=$!
	pids="$pids $server_pid"
}

start_server() {
	port_plain=$("$bench" freeport)
	port_tls=$("$bench" freeport)
	while [ "$port_tls" = "$port_plain" ]; do port_tls=$("$bench" freeport); done
	case $1 in
	gannetd-shared) start_gannetd "$1" shared ;;
	gannetd-nocache) start_gannetd "$1" shared 0 ;;
	gannetd-perconn) start_gannetd "$1" per-connection ;;
	dovecot-default) start_dovecot "$1" no ;;
	dovecot-hp) start_dovecot "$1" yes ;;
	dovecot-hp-cache) start_dovecot "$1" yes yes ;;
	*) die "unknown server $1" ;;
	esac
	wait_port "$port_plain" || die "$1 did not come up on 127.0.0.1:$port_plain (see $run/$1)"
}

stop_server() {
	stop_pid "$server_pid"
	# shellcheck disable=SC2086 # PIDS is a word list on purpose
	pids=$(printf '%s\n' $pids | grep -vx "$server_pid" || true)
}

# ------------------------------------------------------------------ measurements

# Percent of all CPUs busy over one second (everything on the machine, not only us).
cpu_busy() {
	local a b
	a=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6; exit}' /proc/stat)
	sleep 1
	b=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6; exit}' /proc/stat)
	echo "$a $b" | awk '{busy = $3 - $1; idle = $4 - $2; print int(100 * busy / (busy + idle + 0.001))}'
}

# These machines are shared: before each server's block wait (at most 3 minutes) until
# other work leaves the CPUs mostly idle, and say so when it never does.
wait_quiet() {
	local i=0 busy
	busy=$(cpu_busy)
	while [ "$busy" -gt 20 ] && [ $i -lt "$quiet_wait" ]; do
		[ $((i % 30)) -eq 0 ] && log "machine busy ($busy% CPU from other work), waiting"
		busy=$(cpu_busy)
		i=$((i + 1))
	done
	[ "$busy" -le 20 ] || log "warning: machine still $busy% busy; measuring anyway"
	echo "busy_before=$busy" >>"$run/quiet.log"
}

# One measurement: gannet-bench prints one "result" line; keep it with the server and rep.
measure() {
	local srv=$1 rep=$2 figure=$3
	shift 3
	local out
	case " ${figures:-$figure} " in *" $figure "*) ;; *) return 0 ;; esac
	out=$("$bench" "$@" --label "$figure" 2>>"$run/bench-stderr.log") || true
	if [ -z "$out" ]; then
		out="result mode=$1 label=$figure errors=1 first_error=no_output"
	fi
	printf 'server=%s rep=%s load1=%s %s\n' "$srv" "$rep" "$(cut -d' ' -f1 /proc/loadavg)" \
		"$out" >>"$results"
	printf '  %-16s %-22s %s\n' "$srv" "$figure" "$(echo "$out" | cut -c1-150)" >&2
}

run_server() {
	local srv=$1 rep=$2
	local common=(--port "$port_plain" --password "$password")
	local tls=(--port "$port_tls" --tls --password "$password")
	local many=(--user-prefix u --users "$users_total" --src-addrs 50)

	# Warm-up, not recorded: processes spawned, caches filled.
	"$bench" sessions "${common[@]}" "${many[@]}" --concurrency $conc --seconds 1 \
		--label warmup >/dev/null 2>&1 || true
	measure "$srv" "$rep" sessions_plain sessions "${common[@]}" "${many[@]}" --users 64 \
		--concurrency $conc --seconds "$secs"
	measure "$srv" "$rep" sessions_tls sessions "${tls[@]}" "${many[@]}" --users 64 \
		--concurrency $conc --seconds "$secs"
	measure "$srv" "$rep" sessions_tls_resume sessions "${tls[@]}" "${many[@]}" --users 64 \
		--tls-resume --concurrency $conc --seconds "$secs"
	case $srv in
	*cache) return 0 ;; # the credential cache only changes the login figures
	esac
	measure "$srv" "$rep" retr_small retr "${common[@]}" --user small --passes 10 --seconds 120
	# RFC 2449 PIPELINING, which both servers announce: sixteen RETRs in flight, as pipelining
	# clients (mpop; gannet keeps 32) send them. Without it each message waits a round trip.
	measure "$srv" "$rep" retr_small_pipe retr "${common[@]}" --user small --passes 10 \
		--pipeline 16 --seconds 120
	measure "$srv" "$rep" retr_huge retr "${common[@]}" --user huge --passes 1 --seconds 120
	drop_index
	measure "$srv" "$rep" bigbox_cold bigbox "${common[@]}" --user big
	measure "$srv" "$rep" bigbox_warm bigbox "${common[@]}" --user big
	measure "$srv" "$rep" idle_plain idle "${common[@]}" "${many[@]}" \
		--concurrency "$idle_n" --seconds 3 --ramp-timeout 30 --server-pid "$server_pid"
	measure "$srv" "$rep" idle_tls idle "${tls[@]}" "${many[@]}" \
		--concurrency "$idle_n" --seconds 3 --ramp-timeout 30 --server-pid "$server_pid"
	if [ "$srv" = gannetd-shared ] || [ "$srv" = dovecot-hp ]; then
		measure "$srv" "$rep" idle_many_plain idle "${common[@]}" "${many[@]}" \
			--concurrency "$idle_max" --seconds 5 --ramp-timeout 60 \
			--server-pid "$server_pid"
		measure "$srv" "$rep" idle_many_tls idle "${tls[@]}" "${many[@]}" \
			--concurrency "$idle_max" --seconds 5 --ramp-timeout 90 \
			--server-pid "$server_pid"
	fi
}

machine() {
	echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/^Mem:/ {print $2}') GiB"
	echo "kernel: $(uname -r); gannetd $(cd "$top" && git describe --always --dirty 2>/dev/null || echo '?'); Dovecot $(dovecot --version)"
	echo "command: make bench (bench/run.sh; BENCH_REPS=$reps BENCH_SECONDS=$secs BENCH_IDLE=$idle_n BENCH_IDLE_MAX=$idle_max); $(date -u '+%Y-%m-%d %H:%M UTC')"
}

setup_data
# Prime the big maildrop once: Dovecot's first login moves new/ to cur/, which is a one-time
# cost no later login pays. Every measured cold login then starts from the same files.
if [ ! -f "$base/corpus/big/.primed" ] && echo "$servers" | grep -q dovecot; then
	log "priming the 100,000-message maildrop"
	start_server dovecot-default
	"$bench" bigbox --port "$port_plain" --password "$password" --user big --label prime \
		>/dev/null 2>&1 || true
	stop_server
	touch "$base/corpus/big/.primed"
fi

machine | tee "$run/machine.txt" >&2
for rep in $(seq 1 "$reps"); do
	for srv in $servers; do
		wait_quiet
		log "rep $rep/$reps: $srv"
		start_server "$srv"
		run_server "$srv" "$rep"
		stop_server
	done
done
/usr/bin/python3 "$top/bench/report.py" "$results" "$run/machine.txt" | tee "$run/table.md"
log "results: $results; table: $run/table.md"
