#!/bin/bash
# Benchmark smoke run for make test: a gannetd on free loopback ports with a tiny generated
# corpus, gannet-bench for a second or two in every mode, each run's exit status and result
# fields checked, so the benchmark code cannot rot. Usage: bench/smoke.sh [BUILD_DIR]
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$top" && cd "${1:-${BUILD:-build}}" && pwd)
bench="$build/gannet-bench"
for f in gannetd gannet-bench; do
	[ -x "$build/$f" ] || { echo "smoke: $build/$f missing: run make all" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/gannet-bench-smoke.XXXXXX)
server_pid=""
cleanup() {
	if [ -n "$server_pid" ]; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
check() {
	local name=$1 status=$2 out=$3
	shift 3
	local missing=""
	for key in "$@"; do
		case " $out " in *" $key="*) ;; *) missing="$missing $key" ;; esac
	done
	case " $out " in *" errors=0 "*) ;; *) missing="$missing errors=0" ;; esac
	if [ "$status" -eq 0 ] && [ -z "$missing" ]; then
		passed=$((passed + 1))
		echo "ok   $name: $out" | cut -c1-200
	else
		failed=$((failed + 1))
		echo "FAIL $name (exit $status, missing:$missing): $out"
	fi
}

# Same seed, same bytes: the corpus generator must be deterministic.
mkdir -p "$tmp/c1" "$tmp/c2"
"$bench" corpus tiny 42 "$tmp/c1/Maildir" >/dev/null
"$bench" corpus tiny 42 "$tmp/c2/Maildir" >/dev/null
if diff -r "$tmp/c1" "$tmp/c2" >/dev/null; then
	passed=$((passed + 1))
	echo "ok   corpus: deterministic"
else
	failed=$((failed + 1))
	echo "FAIL corpus: two runs with one seed differ"
fi

password=smoke-pw
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
hash="{SHA512-CRYPT}$(printf '%s\n' "$password" | openssl passwd -6 -stdin)"
"$bench" users u 40 "$tmp/home" "$hash" "$tmp/users" "$tmp/c1/Maildir/new" 8 >/dev/null
printf 'box:%s::::%s::\n' "$hash" "$tmp/c2" >>"$tmp/users"
port=$("$bench" freeport)
tls_port=$("$bench" freeport)
while [ "$tls_port" = "$port" ]; do tls_port=$("$bench" freeport); done
mkdir -p "$tmp/state"
cat >"$tmp/gannetd.conf" <<EOF
listen = 127.0.0.1:$port
listen_tls = 127.0.0.1:$tls_port
tls_cert = $tmp/cert.pem
tls_key = $tmp/key.pem
userdb = $tmp/users
mail_location = %h/Maildir
state_dir = $tmp/state
hostname = localhost
log_level = warning
# as bench/run.sh: the corpus has raw UTF-8 headers; send them as Dovecot does
refuse_8bit_headers = no
EOF
"$build/gannetd" -d -c "$tmp/gannetd.conf" 2>"$tmp/gannetd.log" &
server_pid=$!

i=0
until "$bench" sessions --port "$port" --password "$password" --max-sessions 1 --seconds 1 \
	>/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -ge 50 ] || ! kill -0 "$server_pid" 2>/dev/null; then
		echo "FAIL gannetd did not start:"
		cat "$tmp/gannetd.log"
		echo "0 passed, 1 failed"
		exit 1
	fi
	sleep 0.1
done

run() {
	local name=$1 fields=$2 status=0 out
	shift 2
	out=$("$bench" "$@" --label "$name" 2>&1) || status=$?
	# shellcheck disable=SC2086 # FIELDS is a word list on purpose
	check "$name" "$status" "$out" $fields
}

plain=(--port "$port" --password "$password")
tls=(--port "$tls_port" --tls --password "$password")
sess_fields="sessions sessions_per_s p50_ms p99_ms client_cpu_pct"
run sessions_plain "$sess_fields" sessions "${plain[@]}" --users 8 --concurrency 4 --seconds 1
run sessions_tls "$sess_fields tls_full tls_resumed" sessions "${tls[@]}" --users 8 --concurrency 4 --seconds 1 \
	--tls-resume
run retr "bytes mb_per_s size_mismatches" retr "${plain[@]}" --user box --passes 3
run retr_tls "bytes mb_per_s size_mismatches" retr "${tls[@]}" --user box
# Pipelined: eight RETRs in flight; every message of every pass must come back whole, in order.
for t in plain tls; do
	if [ $t = plain ]; then args=("${plain[@]}"); else args=("${tls[@]}"); fi
	status=0
	out=$("$bench" retr "${args[@]}" --user box --passes 3 --pipeline 8 --label "retr_pipe_$t" 2>&1) ||
		status=$?
	msgs=$(printf '%s\n' "$out" | sed -n 's/.* messages=\([0-9]*\) .*/\1/p')
	want=" pipeline=8 *retrieved=$((${msgs:-0} * 3)) *size_mismatches=0 "
	# shellcheck disable=SC2254 # WANT is a pattern on purpose
	case " $out " in *$want*) ;; *) [ "$status" -ne 0 ] || status=1 ;; esac
	check "retr_pipe_$t" "$status" "$out" bytes mb_per_s
done
run bigbox "messages login_ms stat_ms list_ms uidl_ms" bigbox "${plain[@]}" --user box
idle_fields="logged_in pss_before_kib pss_after_kib kib_per_conn"
run idle_plain "$idle_fields" idle "${plain[@]}" --users 40 --concurrency 30 --seconds 1 \
	--server-pid "$server_pid"
run idle_tls "$idle_fields" idle "${tls[@]}" --users 40 --concurrency 30 --seconds 1 \
	--server-pid "$server_pid"
# A bad password must make the run fail, not report a rate.
status=0
"$bench" sessions "${plain[@]}" --password wrong --users 8 --max-sessions 2 --seconds 1 \
	>/dev/null 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
	passed=$((passed + 1))
	echo "ok   failures are reported: exit $status on a wrong password"
else
	failed=$((failed + 1))
	echo "FAIL a wrong password still exited 0"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
