#!/bin/sh
# Install the Debian packages Gannet needs to build, run and test; as a non-root user, print the
# exact apt-get line instead and stop. Usage: scripts/deps.sh [build|test|bench]
set -eu

what=${1:-test}
build_pkgs="gcc make pkg-config libevent-dev libssl-dev libcrypt-dev libargon2-dev libsystemd-dev openssl
	libgsasl-dev libjwt-dev libjansson-dev liboath-dev libqrencode-dev libpasswdqc-dev liblockfile-dev libpam0g-dev"
test_pkgs="clang libclang-rt-14-dev libcmocka-dev python3 python3-pytest curl fetchmail mpop getmail6 procps
	gsasl oathtool fail2ban dovecot-pop3d python3-openssl liblockfile-bin"
bench_pkgs="dovecot-pop3d"

case "$what" in
build) pkgs="$build_pkgs" ;;
test) pkgs="$build_pkgs $test_pkgs" ;;
bench) pkgs="$build_pkgs $test_pkgs $bench_pkgs" ;;
*) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "Gannet needs these Debian packages. Install them as root with:" >&2
	echo "  apt-get update && apt-get install -y$missing" >&2
	exit 1
fi
echo "Installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# dovecot-pop3d and fetchmail ship services; keep them from starting on install.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d.gannet
chmod 755 /usr/sbin/policy-rc.d.gannet
if [ ! -e /usr/sbin/policy-rc.d ]; then
	mv /usr/sbin/policy-rc.d.gannet /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
else
	rm -f /usr/sbin/policy-rc.d.gannet
fi
apt-get install -y -q --no-install-recommends $missing
