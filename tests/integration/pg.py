"""A throwaway PostgreSQL server for the tests of the shared store (scripts/pg.sh): one
cluster per test module on 127.0.0.1, a fresh database per test, stopped at the end."""
import os
import subprocess
import tempfile

import harness

PG_SH = os.path.join(harness.ROOT, "scripts", "pg.sh")


class Server:
    def __init__(self):
        # short: the server's unix socket lives in it (a sockaddr_un holds 107 bytes)
        self.dir = tempfile.mkdtemp(prefix="obpg-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.n = 0
        self.start()
        with open(os.path.join(self.dir, "password")) as f:
            harness.SECRETS.add(f.read())
        self.password_file = os.path.join(self.dir, "password")

    def _sh(self, *args, check=True, timeout=120):
        r = subprocess.run(["sh", PG_SH] + list(args), capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"pg.sh {' '.join(args)}: exit {r.returncode}: {r.stderr}")
        return r

    def start(self):
        self.url = self._sh("start", self.dir).stdout.strip()
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])

    def stop(self):
        self._sh("stop", self.dir, check=False)

    def kill(self):
        """An immediate shutdown: what a crash of the database server looks like."""
        self._sh("kill", self.dir)

    def psql(self, sql, db="orderbridge"):
        r = self._sh("psql", self.dir, "-d", db, "-tA", "-c", sql)
        return r.stdout.strip()

    def new_database(self, name=None):
        self.n += 1
        name = name or f"t{os.getpid()}_{self.n}"
        self.psql(f"CREATE DATABASE {name} OWNER orderbridge", db="postgres")
        return name

    def store(self, db=None):
        """The [store] section of a daemon on database `db` (a new one when None)."""
        db = db or self.new_database()
        return {"url": self.url.rsplit("/", 1)[0] + "/" + db,
                "password_file": self.password_file, "claim_ttl_s": "3"}

    def cleanup(self):
        self.stop()
        subprocess.run(["rm", "-rf", self.dir])
