#!/bin/sh
# make run: create (first time only) a demo state directory with a self-signed certificate, a
# config, a demo user and a demo Maildir, then run gannetd in the foreground on 127.0.0.1.
# Usage: scripts/run-demo.sh BUILD_DIR
set -eu

build=${1:?usage: $0 BUILD_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
state="$top/run"
plain_port=${GANNET_DEMO_PORT:-1110}
tls_port=${GANNET_DEMO_TLS_PORT:-1995}

if [ ! -f "$state/gannetd.conf" ]; then
	echo "Creating the demo state directory $state"
	mkdir -p "$state/state" "$state/home/demo"
	chmod 700 "$state"
	openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$state/key.pem" -out "$state/cert.pem" 2>/dev/null
	chmod 600 "$state/key.pem"
	password=$(openssl rand -base64 18 | tr -d '/+=' | cut -c1-16)
	printf '%s\n' "$password" >"$state/demo-password"
	chmod 600 "$state/demo-password"
	: >"$state/users"
	printf '%s\n' "$password" |
		"$build/gannetctl" -f "$state/users" user add demo --home "$state/home/demo" \
			--password-stdin >/dev/null
	md="$state/home/demo/Maildir"
	mkdir -p "$md/new" "$md/cur" "$md/tmp"
	now=$(date +%s)
	i=0
	for subject in "Welcome to Gannet" "Your POP3 server works" "Lines that start with a dot"; do
		i=$((i + 1))
		{
			printf 'From: Gannet <gannet@localhost>\nTo: demo@localhost\n'
			printf 'Subject: %s\nDate: %s\nMessage-ID: <demo%d@localhost>\n\n' \
				"$subject" "$(date -R)" "$i"
			printf 'This is demo message %d.\n' "$i"
			[ "$i" -eq 3 ] && printf '.\nA line with a single dot stands above.\n..two dots\n'
			printf 'Gannet serves it over POP3 with exact sizes and stable UIDLs.\n'
		} >"$md/tmp/$now.M${i}P$$.localhost"
		mv "$md/tmp/$now.M${i}P$$.localhost" "$md/new/$now.M${i}P$$.localhost"
	done
	{
		echo "# Demo configuration written by 'make run'. See docs/configuration.md."
		echo "listen = 127.0.0.1:$plain_port"
		echo "listen_tls = 127.0.0.1:$tls_port"
		echo "tls_cert = $state/cert.pem"
		echo "tls_key = $state/key.pem"
		echo "userdb = $state/users"
		echo "mail_location = %h/Maildir"
		echo "state_dir = $state/state"
		echo "auth_dir = $state/auth"
		echo "hostname = localhost"
		if [ "$(id -u)" -eq 0 ]; then
			mkdir -p "$state/empty"
			chmod 555 "$state/empty"
			echo "# Started as root: the login processes drop to nobody in an empty chroot."
			echo "login_user = nobody"
			echo "login_chroot = $state/empty"
		fi
	} >"$state/gannetd.conf"
fi

password=$(cat "$state/demo-password")
cat <<TXT

Gannet demo server on 127.0.0.1 (Ctrl-C stops it)
  user: demo   password: $password
  POP3 + STLS:   127.0.0.1:$plain_port
  POP3 over TLS: 127.0.0.1:$tls_port  (self-signed certificate: $state/cert.pem)

List the demo mailbox:
  curl --cacert $state/cert.pem pop3s://localhost:$tls_port/ -u demo:$password
Read message 1:
  curl --cacert $state/cert.pem pop3s://localhost:$tls_port/1 -u demo:$password

TXT
exec "$build/gannetd" -d -c "$state/gannetd.conf"
