"""Shared helpers for the benchmark scripts: a throwaway PostgreSQL cluster and
a description of the machine.

Run the scripts that import this module with Debian's interpreter,
/usr/bin/python3, which imports Debian's python3-psycopg2.  They run as root: the cluster
is created and started as the unprivileged ``postgres`` user with runuser.

    with hlbench.throwaway_cluster() as dsn:
        conn = psycopg2.connect(dsn)

The cluster listens on a Unix socket in a private directory only
(listen_addresses is empty), so nothing outside this machine can reach it.
Its data directory is a fresh temporary directory, which is removed together
with the cluster when the ``with`` block ends, also on an exception or Ctrl-C.
"""

import contextlib
import os
import platform
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile

import psycopg2

CLUSTER_USER = "postgres"

# Settings for a benchmark cluster.  fsync, full_page_writes and
# synchronous_commit are off because the cluster is thrown away after the
# run: a crash loses nothing of value, and the timings then measure the
# extension rather than the disk.
BENCH_SETTINGS = {
    "listen_addresses": "''",
    "shared_buffers": "'256MB'",
    "work_mem": "'64MB'",
    "maintenance_work_mem": "'256MB'",
    "max_connections": "20",
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "max_wal_size": "'4GB'",
    "checkpoint_timeout": "'30min'",
    "autovacuum": "off",
    "logging_collector": "off",
    "log_min_messages": "warning",
}


class BenchSetupError(RuntimeError):
    """A prerequisite of the benchmark (binaries, user, extension) is missing."""


def pg_bindir():
    """Return the directory of initdb and pg_ctl, as pg_config reports it."""
    try:
        result = subprocess.run(["pg_config", "--bindir"], check=True,
                                capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as error:
        raise BenchSetupError(
            f"pg_config failed ({error}); install postgresql-server-dev-15") from error
    return result.stdout.strip()


def pg_config_value(option):
    """Return one value of pg_config, for example --sharedir."""
    result = subprocess.run(["pg_config", option], check=True,
                            capture_output=True, text=True)
    return result.stdout.strip()


def check_extension_installed(install_root=None):
    """Raise BenchSetupError unless humanloop's control file and library are installed.

    install_root is the DESTDIR of a private copy, as build_private_install makes it.
    """
    root = install_root or "/"
    control = os.path.join(root + pg_config_value("--sharedir"), "extension", "humanloop.control")
    library = os.path.join(root + pg_config_value("--pkglibdir"), "humanloop.so")
    missing = [path for path in (control, library) if not os.path.exists(path)]
    if missing:
        raise BenchSetupError(
            "the humanloop extension is not installed (missing: " + ", ".join(missing) +
            "); run `make && make install` as root in the repository first")


def run_as_cluster_user(args, cwd, log=None):
    """Run a command as the cluster user with runuser and raise on failure.

    The command's output goes to the file object log, or is captured and
    included in the error message when the command fails.
    """
    command = ["runuser", "-u", CLUSTER_USER, "--"] + args
    if log is not None:
        subprocess.run(command, cwd=cwd, check=True, stdout=log, stderr=subprocess.STDOUT)
        return
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchSetupError(
            f"{' '.join(args)} failed with exit status {result.returncode}:\n"
            f"{result.stdout}{result.stderr}")


def choose_port():
    """Return a port number for the cluster's socket file.

    The socket lives in a private directory, so any valid number works.  The
    number comes from the process id, which keeps the log lines of two
    clusters apart.
    """
    return 40000 + os.getpid() % 20000


def _raise_system_exit(signum, frame):
    """Turn SIGTERM into SystemExit, so that the cluster is stopped on kill."""
    raise SystemExit(128 + signum)


def _stop_cluster(bindir, data_dir, cwd):
    """Stop the cluster in data_dir: fast shutdown first, immediate if that fails."""
    pg_ctl = os.path.join(bindir, "pg_ctl")
    for mode in ("fast", "immediate"):
        result = subprocess.run(
            ["runuser", "-u", CLUSTER_USER, "--", pg_ctl, "stop", "-D", data_dir,
             "-m", mode, "-w", "-t", "60"],
            cwd=cwd, capture_output=True, text=True)
        if result.returncode == 0:
            return
        if not os.path.exists(os.path.join(data_dir, "postmaster.pid")):
            return
    print(f"hlbench: could not stop the cluster in {data_dir}:\n{result.stderr}",
          file=sys.stderr)


@contextlib.contextmanager
def throwaway_cluster(settings=None, keep_log=None, preload=False, install_root=None):
    """Start a temporary PostgreSQL cluster and yield a DSN for its postgres database.

    settings adds to or overrides BENCH_SETTINGS (values as they are written in
    postgresql.conf).  The cluster runs as the postgres user, listens on a Unix
    socket in a private directory only, and has humanloop available for
    CREATE EXTENSION.  When the block ends, also through an exception, Ctrl-C or
    SIGTERM, the cluster is stopped and its directory removed.  keep_log names
    a file to which the server log is copied first.  preload adds humanloop to
    shared_preload_libraries, which settings defined at server start need.

    install_root runs the server from a private copy of the PostgreSQL
    installation under that directory instead, so that a `make install`
    elsewhere on the machine cannot change the extension during a long run.
    The copy is made with: cp -a of the bin directory, cp -as of the lib and
    share directories, then `make install DESTDIR=install_root` of humanloop.
    PostgreSQL finds the share and lib directories relative to its binary
    when they keep their layout, as in Debian's packages.
    """
    check_extension_installed(install_root)
    bindir = pg_bindir()
    if install_root:
        bindir = install_root + bindir
    try:
        user = pwd.getpwnam(CLUSTER_USER)
    except KeyError as error:
        raise BenchSetupError(f"user {CLUSTER_USER!r} not found; install postgresql-15") from error

    previous_handler = None
    if hasattr(signal, "SIGTERM"):
        try:
            previous_handler = signal.signal(signal.SIGTERM, _raise_system_exit)
        except ValueError:
            previous_handler = None  # not the main thread: leave signals alone

    base = tempfile.mkdtemp(prefix="hlbench-")
    data_dir = os.path.join(base, "data")
    socket_dir = os.path.join(base, "socket")
    log_path = os.path.join(base, "server.log")
    started = False
    try:
        os.mkdir(socket_dir, 0o700)
        for path in (base, socket_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(base, 0o700)

        run_as_cluster_user([os.path.join(bindir, "initdb"), "-D", data_dir, "-U", CLUSTER_USER,
                             "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
                            cwd=base)

        port = choose_port()
        all_settings = dict(BENCH_SETTINGS)
        all_settings["port"] = str(port)
        all_settings["unix_socket_directories"] = f"'{socket_dir}'"
        if preload:
            all_settings["shared_preload_libraries"] = "'humanloop'"
        all_settings.update(settings or {})
        with open(os.path.join(data_dir, "postgresql.conf"), "a") as conf:
            conf.write("\n# Added by test/bench/hlbench.py for a throwaway benchmark cluster\n")
            for name, value in all_settings.items():
                conf.write(f"{name} = {value}\n")

        started = True
        run_as_cluster_user([os.path.join(bindir, "pg_ctl"), "start", "-D", data_dir,
                             "-l", log_path, "-w", "-t", "120"], cwd=base)

        dsn = f"host={socket_dir} port={port} user={CLUSTER_USER} dbname=postgres"
        _check_create_extension(dsn)
        yield dsn
    except BaseException:
        _print_log_tail(log_path)
        raise
    finally:
        if started:
            _stop_cluster(bindir, data_dir, base)
        if keep_log and os.path.exists(log_path):
            shutil.copyfile(log_path, keep_log)
        shutil.rmtree(base, ignore_errors=True)
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)


def copy_labelled_csv(cur, table, path):
    """Create table (text, category) and load the CSV file at path, header text,category, into it."""
    cur.execute(f"CREATE TABLE {table} (text text, category text)")
    with open(path, encoding="utf-8") as f:
        cur.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)", f)


def print_table(lines, out=None):
    """Print the Markdown lines as one text, and write it to the file out when given."""
    table = "\n".join(lines) + "\n"
    print(table)
    if out:
        with open(out, "w") as f:
            f.write(table)


def ensure_private_install(root, commit):
    """Build commit into the private install root unless root exists (no-op when root is None)."""
    if root and not os.path.exists(root):
        print("building", commit, "into", root, file=sys.stderr)
        build_private_install(root, commit)


def build_private_install(root, commit="HEAD", repository=None):
    """Build humanloop at commit into a private copy of PostgreSQL under root.

    The bin directory is copied, the lib and share directories are copied as
    symbolic links, and the extension is built from `git archive commit` in
    root/src and installed with `make install DESTDIR=root`.  root/REVISION
    stores the abbreviated commit for the reports.  Pass root as install_root
    to throwaway_cluster.
    """
    repository = repository or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    revision = subprocess.run(["git", "-C", repository, "rev-parse", "--short", commit],
                              check=True, capture_output=True, text=True).stdout.strip()
    if os.path.exists(root):
        raise BenchSetupError(f"{root} exists; remove it or choose another directory")
    bindir = pg_bindir()
    pkglibdir = pg_config_value("--pkglibdir")
    sharedir = pg_config_value("--sharedir")
    for path in (bindir, pkglibdir, sharedir):
        os.makedirs(os.path.dirname(root + path), exist_ok=True)
    subprocess.run(["cp", "-a", bindir, root + bindir], check=True)
    subprocess.run(["cp", "-as", pkglibdir, root + pkglibdir], check=True)
    subprocess.run(["cp", "-as", sharedir, root + sharedir], check=True)
    # Links to a system-wide humanloop must not shadow the private build.
    library = os.path.join(root + pkglibdir, "humanloop.so")
    if os.path.lexists(library):
        os.remove(library)
    extension_dir = os.path.join(root + sharedir, "extension")
    for name in os.listdir(extension_dir):
        if name.startswith("humanloop"):
            os.remove(os.path.join(extension_dir, name))

    source = os.path.join(root, "src")
    os.makedirs(source)
    archive = subprocess.Popen(["git", "-C", repository, "archive", revision], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", source], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise BenchSetupError(f"git archive {revision} failed")
    subprocess.run(["make", "-s", "-j2"], cwd=source, check=True)
    subprocess.run(["make", "-s", "install", f"DESTDIR={root}"], cwd=source, check=True)
    subprocess.run(["chmod", "-R", "a+rX", root], check=True)
    with open(os.path.join(root, "REVISION"), "w") as f:
        f.write(revision + "\n")
    return revision


def _print_log_tail(log_path, lines=20):
    """Print the last lines of the server log to stderr, to explain a failure."""
    if not os.path.exists(log_path):
        return
    with open(log_path, errors="replace") as f:
        tail = f.readlines()[-lines:]
    if tail:
        print(f"hlbench: last lines of the server log {log_path}:", file=sys.stderr)
        sys.stderr.write("".join(tail))


def _check_create_extension(dsn):
    """Create and drop humanloop once, so that a broken install fails early and clearly."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("CREATE EXTENSION humanloop")
            except psycopg2.Error as error:
                raise BenchSetupError(
                    f"CREATE EXTENSION humanloop failed: {error.pgerror or error}; "
                    "rebuild and reinstall with `make && make install`") from error
            cur.execute("DROP EXTENSION humanloop CASCADE")
    finally:
        conn.close()


def dsn_for_database(dsn, dbname):
    """Return dsn with its dbname replaced by dbname."""
    parts = [part for part in dsn.split() if not part.startswith("dbname=")]
    parts.append(f"dbname={dbname}")
    return " ".join(parts)


def server_version(dsn):
    """Return the server's version string, for example '15.8 (Debian 15.8-0+deb12u1)'."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            return cur.fetchone()[0]
    finally:
        conn.close()


def cpu_model():
    """Return the CPU model name from /proc/cpuinfo, or platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gib():
    """Return the total memory in GiB from /proc/meminfo, or None if unreadable."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def describe_machine(dsn=None):
    """Describe the machine for a report: CPU model, cores, memory and PostgreSQL version.

    With a dsn the version is the running server's, otherwise pg_config's.
    """
    memory = memory_gib()
    memory_text = f"{memory:.0f} GiB" if memory is not None else "unknown memory"
    if dsn is not None:
        version = "PostgreSQL " + server_version(dsn)
    else:
        version = pg_config_value("--version")
    return f"{cpu_model()}, {os.cpu_count()} cores, {memory_text}; {version}"


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "private-install":
        print(build_private_install(*sys.argv[2:]))
    else:
        sys.exit("usage: hlbench.py private-install DIR [COMMIT]")
