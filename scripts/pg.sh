#!/bin/sh
# A throwaway PostgreSQL server for the PostgreSQL store's tests and benchmarks: one
# cluster in DIR/data, listening on 127.0.0.1 only, at a port chosen once and kept in
# DIR/port, its unix socket in DIR, its log in DIR/log. Never touches the system's own
# clusters (no pg_ctlcluster, no /etc/postgresql).
#
#   pg.sh start DIR       make the cluster when DIR/data is missing, start it, print its URL
#   pg.sh stop DIR        fast shutdown (nothing to do when it is down)
#   pg.sh kill DIR        immediate shutdown: a crash, for restart tests
#   pg.sh psql DIR [...]  psql as the superuser over the socket, database orderbridge
#
# At first start it makes the login role `orderbridge` (CREATEDB, a random password in
# DIR/password, 0600, no newline) and its database `orderbridge`. TCP connections need that
# password (scram-sha-256); the superuser `postgres` is trusted on the socket only. The URL
# (also in DIR/url) carries no password. fsync stays on: the tests check durability.
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user,
# which owns DIR and must be able to reach it.
set -eu

usage()
{
	echo "usage: pg.sh start|stop|kill DIR | pg.sh psql DIR [psql args...]" >&2
	exit 2
}

die()
{
	echo "pg.sh: $*" >&2
	exit 1
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
shift 2

# the newest installed major version
bin=""
newest=0
for d in /usr/lib/postgresql/*/bin; do
	v=${d#/usr/lib/postgresql/}
	v=${v%/bin}
	case $v in '' | *[!0-9]*) continue ;; esac
	if [ -x "$d/pg_ctl" ] && [ "$v" -gt "$newest" ]; then
		bin=$d
		newest=$v
	fi
done
[ -n "$bin" ] || die "no PostgreSQL server in /usr/lib/postgresql/*/bin (apt-get install postgresql-15)"

superuser=postgres
as_server=""
if [ "$(id -u)" = 0 ]; then
	id postgres >/dev/null 2>&1 || die "running as root needs the postgres user"
	as_server="runuser -u postgres --"
fi

# Runs a server program as the user the server runs as.
server()
{
	$as_server "$@"
}

# The tail of the server's log, after a failure.
log_tail()
{
	[ -f "$dir/log" ] && tail -n 20 "$dir/log" >&2
	return 0
}

sql()
{
	"$bin/psql" -X -h "$dir" -p "$(cat "$dir/port")" -U "$superuser" -v ON_ERROR_STOP=1 "$@"
}

# A TCP port on 127.0.0.1 that nothing listens on now.
free_port()
{
	i=0
	while [ $i -lt 50 ]; do
		p=$(($(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000 + 20000))
		if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
			echo "$p"
			return 0
		fi
		i=$((i + 1))
	done
	die "no free TCP port found"
}

make_dir()
{
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [ -n "$as_server" ]; then
		chown postgres: "$dir"
		server test -r "$dir" -a -w "$dir" -a -x "$dir" ||
			die "the postgres user cannot reach $dir (a parent directory is closed to it);" \
			    "use a directory under /tmp"
	fi
	# the socket path must fit a sockaddr_un (107 bytes)
	[ ${#dir} -le 90 ] || die "$dir: too long a path for a unix socket; use a shorter one"
}

init_cluster()
{
	server "$bin/initdb" -D "$dir/data" -U "$superuser" -E UTF8 --locale=C \
		--auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 || {
		tail -n 20 "$dir/initdb.log" >&2
		die "initdb failed"
	}
	cat >"$dir/hba.tmp" <<-EOF
		# pg.sh: the superuser on the socket only; everyone else by password over TCP
		local all $superuser trust
		host all all 127.0.0.1/32 scram-sha-256
	EOF
	server cp "$dir/hba.tmp" "$dir/data/pg_hba.conf"
	rm -f "$dir/hba.tmp"
	echo "include_if_exists = 'orderbridge.conf'" | server tee -a "$dir/data/postgresql.conf" \
		>/dev/null
	free_port >"$dir/port"
}

# Rewritten at every start: the port is DIR/port's, the socket DIR's.
write_conf()
{
	cat <<-EOF | server tee "$dir/data/orderbridge.conf" >/dev/null
		listen_addresses = '127.0.0.1'
		port = $(cat "$dir/port")
		unix_socket_directories = '$dir'
		max_connections = 200
		password_encryption = 'scram-sha-256'
	EOF
}

# The role, its password and its database, when missing (first start).
make_role()
{
	if [ ! -s "$dir/password" ]; then
		pw=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
		(umask 077 && printf '%s' "$pw" >"$dir/password.tmp")
		chmod 600 "$dir/password.tmp"
		exists=$(sql -d postgres -tA -c "SELECT 1 FROM pg_roles WHERE rolname='orderbridge'")
		verb=CREATE
		[ "$exists" = 1 ] && verb=ALTER
		printf "\\\\set pw '%s'\n%s ROLE orderbridge LOGIN CREATEDB PASSWORD :'pw';\n" \
			"$pw" "$verb" | sql -q -d postgres >/dev/null
		mv "$dir/password.tmp" "$dir/password"
	fi
	if [ -z "$(sql -d postgres -tA -c "SELECT 1 FROM pg_database WHERE datname='orderbridge'")" ]
	then
		sql -q -d postgres -c "CREATE DATABASE orderbridge OWNER orderbridge" >/dev/null
	fi
}

start()
{
	make_dir
	[ -d "$dir/data" ] || init_cluster
	[ -s "$dir/port" ] || free_port >"$dir/port"
	write_conf
	if ! server "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		server "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start >/dev/null 2>&1 || {
			log_tail
			die "the server in $dir did not start"
		}
	fi
	make_role || {
		log_tail
		die "could not make the orderbridge role and database"
	}
	url="postgresql://orderbridge@127.0.0.1:$(cat "$dir/port")/orderbridge"
	printf '%s\n' "$url" >"$dir/url"
	printf '%s\n' "$url"
}

stop()
{
	mode=$1
	[ -d "$dir/data" ] || return 0
	server "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 || return 0
	server "$bin/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null || {
		log_tail
		die "the server in $dir did not stop"
	}
}

case $cmd in
start) [ $# -eq 0 ] || usage; start ;;
stop) [ $# -eq 0 ] || usage; stop fast ;;
kill) [ $# -eq 0 ] || usage; stop immediate ;;
psql)
	dir=$(cd "$dir" && pwd) || die "$dir: no such directory"
	[ -s "$dir/port" ] || die "$dir: no server made here (pg.sh start $dir)"
	sql -d orderbridge "$@"
	;;
*) usage ;;
esac
