"""Starting, stopping and inspecting the stack's processes: `up`, `down` and `status`."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from headwater.settings import Settings
from headwater.stack import analysis_plugin, config, procs, system, tls
from headwater.stack.install import COMPLETE_MARKER
from headwater.stack.layout import SERVICE_NAMES, StackLayout
from headwater.stack.probes import PROBES, elasticsearch_plugins
from headwater.stack.services import Probe, Service, ServiceStatus, State, evaluate, services_of
from headwater.stack.system import ServiceUser, StackError

STOP_ORDER = ("connect", "kafka", "elasticsearch", "postgres")
STOP_TIMEOUT_S = 30.0
# A started process that has not written its pid (PostgreSQL) within this is taken as dead.
START_GRACE_S = 15.0
# The programs a sweep after `down` may kill: only our servers, never a `tail -f` of a log.
SERVER_EXECUTABLES = frozenset({"java", "postgres", "server-launcher"})
OPEN_FILES = 65535


class ServiceFailed(StackError):
    """A service did not become healthy; carries its log for the CLI to show."""

    def __init__(self, service: str, reason: str, log: Path) -> None:
        super().__init__(f"{service} failed: {reason}")
        self.service, self.reason, self.log = service, reason, log


@dataclass
class Started:
    """A process this `up` launched, watched until it answers."""

    service: str
    at: float
    popen: subprocess.Popen[bytes] | None = None
    why: str = "starting"


@dataclass
class UpReport:
    already_healthy: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def raise_open_files_limit(wanted: int = OPEN_FILES) -> None:
    """Let the servers we start hold many files (Elasticsearch warns below 65535)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if system.is_root() and hard != resource.RLIM_INFINITY and hard < wanted:
        hard = wanted
    target = hard if hard == resource.RLIM_INFINITY else min(max(soft, wanted), hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def child_env(
    extra: dict[str, str] | None = None, user: ServiceUser | None = None
) -> dict[str, str]:
    """The environment for a server: ours without HW_* (secrets) and JVM overrides."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HW_") and k not in ("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "CLASSPATH")
    }
    if user is not None:
        env.update(HOME=str(user.home), USER=user.name, LOGNAME=user.name)
    env.update(extra or {})
    return env


class Stack:
    """The four services of one data_dir; every method re-reads the machine's state."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.layout = StackLayout.of(settings.stack)
        self.services: dict[str, Service] = services_of(settings)
        self._user: ServiceUser | None = None
        self._user_resolved = False

    # Who runs what -------------------------------------------------------------------------
    @property
    def user(self) -> ServiceUser | None:
        if not self._user_resolved:
            self._user = system.service_user(self.settings.stack.es_user)
            self._user_resolved = True
        return self._user

    def _as_user(self, argv: list[str]) -> list[str]:
        return self.user.command(argv) if self.user else argv

    def java(self) -> Path:
        home, _ = system.find_jdk()
        return home / "bin" / "java"

    # Which process is ours -----------------------------------------------------------------
    def managed_pid(self, name: str) -> int | None:
        """The pid of our running process for `name`, or None (also for a stale pid file)."""
        if name == "postgres":
            pid = procs.read_pid_file(self.layout.postgres_data / "postmaster.pid")
        else:
            pid = procs.read_pid_file(self.layout.pid_file(name))
        if pid is None or not procs.is_alive(pid):
            return None
        marker = self.services[name].marker
        return pid if marker in " ".join(procs.cmdline(pid)) else None

    def probe(self, name: str, pid: int | None = None) -> Probe:
        # Kafka's version comes from the jars of the running broker (its cwd is the Kafka home).
        home = (procs.process_cwd(pid) if pid else None) or self.layout.kafka_home
        return PROBES[name](self.settings, home)

    def status_of(self, name: str) -> ServiceStatus:
        service = self.services[name]
        pid = self.managed_pid(name)
        probe = self.probe(name, pid)
        state = evaluate(pid is not None, probe)
        return ServiceStatus(
            service=name,
            state=state,
            pid=pid,
            port=service.port,
            version=probe.version if probe.ok else None,
            rss_mib=procs.tree_rss_mib(pid) if pid else None,
            detail=probe.detail,
        )

    def status(self) -> list[ServiceStatus]:
        return [self.status_of(name) for name in SERVICE_NAMES]

    # Preconditions -------------------------------------------------------------------------
    def check_installed(self) -> None:
        lay = self.layout
        missing = [
            str(path)
            for path in (
                lay.postgres_bin / "postgres",
                lay.kafka_libs / COMPLETE_MARKER,
                lay.debezium_plugin_dir / COMPLETE_MARKER,
                lay.elasticsearch_home / COMPLETE_MARKER,
            )
            if not path.exists()
        ]
        if missing:
            raise StackError(
                "the stack is not installed (missing " + ", ".join(missing) + "); "
                "run `headwater stack install`"
            )
        home, version = lay.elasticsearch_home, self.settings.stack.elasticsearch_version
        if analysis_plugin.installed_version(home) != analysis_plugin.wanted_version(home, version):
            raise StackError(
                f"the Elasticsearch analysis plugin in {analysis_plugin.plugin_dir(home)} is "
                f"missing or older than {analysis_plugin.SOURCE_DIR}; run `headwater stack install`"
            )
        self.java()  # fails clearly without a JDK >= 21
        user = self.user
        if user is None:
            return
        system.make_reachable_dir(lay.data_dir)
        for path in (lay.data_dir, lay.elasticsearch_home, self.java().parent):
            blocked = system.first_untraversable(path, user)
            if blocked is not None:
                raise StackError(
                    f"{user.name} cannot enter {blocked}, so PostgreSQL and Elasticsearch cannot "
                    f"reach {path}; choose a data directory that user can reach with "
                    "HW_STACK_DATA_DIR (or make the directory traversable: chmod o+x)"
                )

    def _ports_taken(self, service: Service) -> list[int]:
        listening = procs.listening_ports()
        return [port for port in service.ports if port in listening]

    # Starting ------------------------------------------------------------------------------
    def _log(self, name: str) -> Path:
        """The service's log file, created writable for whoever runs it."""
        log = self.layout.log_file(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch(exist_ok=True)
        if self.services[name].unprivileged:
            system.chown(log, self.user)
        return log

    def _spawn(
        self, name: str, argv: list[str], cwd: Path, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        log = self._log(name)
        self.layout.run_dir.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            out.write(f"\n--- headwater stack up: starting {name} at {time.ctime()} ---\n".encode())
            out.flush()
            popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.layout.pid_file(name).write_text(f"{popen.pid}\n")
        return popen

    def _run_logged(self, name: str, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        log = self._log(name)
        with log.open("ab") as out:
            proc = subprocess.run(
                argv,
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if proc.returncode != 0:
            raise ServiceFailed(name, f"`{' '.join(argv[-6:])}` exited {proc.returncode}", log)

    def _start_postgres(self) -> Started:
        lay, user, pg = self.layout, self.user, self.settings.postgres
        base = system.owned_dir(lay.service_dir("postgres"), user)
        system.owned_dir(lay.postgres_socket_dir, user)
        env = child_env(user=user)
        if not (lay.postgres_data / "PG_VERSION").exists():
            if lay.postgres_data.exists():
                shutil.rmtree(lay.postgres_data)  # a half-done initdb
            fd, pwfile = tempfile.mkstemp(prefix=".pwfile-", dir=base)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(pg.password.get_secret_value() + "\n")
                system.chown(Path(pwfile), user)
                self._run_logged(
                    "postgres",
                    self._as_user(
                        [
                            str(lay.postgres_bin / "initdb"),
                            "-D",
                            str(lay.postgres_data),
                            "-U",
                            pg.user,
                            f"--pwfile={pwfile}",
                            "--auth-local=scram-sha-256",
                            "--auth-host=scram-sha-256",
                            "--encoding=UTF8",
                            "--locale=C.UTF-8",
                        ]
                    ),
                    cwd=base,
                    env=env,
                )
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(pwfile)
            with (lay.postgres_data / "postgresql.conf").open("a") as fh:
                fh.write("\ninclude 'headwater.conf'\n")
        for file_name, text in (
            ("headwater.conf", config.postgres_conf(self.settings, lay)),
            ("pg_hba.conf", config.postgres_hba(self.settings)),
        ):
            path = lay.postgres_data / file_name
            path.write_text(text)
            path.chmod(0o600)
            system.chown(path, user)
        log = self._log("postgres")
        self._run_logged(
            "postgres",
            self._as_user(
                [
                    str(lay.postgres_bin / "pg_ctl"),
                    "start",
                    "-D",
                    str(lay.postgres_data),
                    "-l",
                    str(log),
                    "-W",
                ]
            ),
            cwd=base,
            env=env,
        )
        return Started("postgres", time.monotonic())

    def _kafka_files(self, name: str, properties: str) -> tuple[Path, Path]:
        directory = self.layout.service_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        props = directory / ("server.properties" if name == "kafka" else "worker.properties")
        props.write_text(properties)
        log4j2 = directory / "log4j2.properties"
        log4j2.write_text(config.log4j2_properties())
        return props, log4j2

    def _start_kafka(self) -> Started:
        lay, stack = self.layout, self.settings.stack
        props, log4j2 = self._kafka_files(
            "kafka", config.kafka_server_properties(self.settings, lay)
        )
        secure = self.settings.stack.secure
        java, env = self.java(), child_env(self._kafka_secrets())
        scram_marker = lay.service_dir("kafka") / "scram-users"
        formatted = (lay.kafka_log_dir / "meta.properties").exists()
        if formatted and secure and not scram_marker.exists():
            raise StackError(
                f"the Kafka data in {lay.kafka_log_dir} was formatted without SASL users, so "
                "the secured stack cannot start on it; use another HW_STACK_DATA_DIR for the "
                "secured stack (or remove that directory to start afresh)"
            )
        if not formatted:
            with self._private_argfile(
                config.kafka_scram_args(self.settings) if secure else ""
            ) as args:
                self._run_logged(
                    "kafka",
                    [
                        str(java),
                        f"-Dlog4j2.configurationFile={log4j2}",
                        "-cp",
                        "libs/*",
                        "kafka.tools.StorageTool",
                        "format",
                        "--standalone",
                        "--ignore-formatted",
                        "-t",
                        config.new_kafka_cluster_id(),
                        "-c",
                        str(props),
                        *([f"@{args}"] if secure else []),
                    ],
                    cwd=lay.kafka_home,
                    env=env,
                )
            if secure:
                scram_marker.write_text(f"{self.settings.stack.kafka_user}\n")
        argv = config.kafka_java_command(java, stack.kafka_heap, "kafka.Kafka", props, log4j2)
        return Started("kafka", time.monotonic(), self._spawn("kafka", argv, lay.kafka_home, env))

    def _kafka_secrets(self) -> dict[str, str]:
        """The environment entry Kafka and Connect resolve ${env:HW_KAFKA_PASSWORD} from."""
        password = self.settings.kafka.password
        if not self.settings.stack.secure or password is None:
            return {}
        return {"HW_KAFKA_PASSWORD": password.get_secret_value()}

    @contextlib.contextmanager
    def _private_argfile(self, text: str) -> Iterator[Path]:
        """A 0600 file for java's @argfile, removed afterwards: secrets stay off command lines."""
        run_dir = self.layout.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".args-", dir=run_dir)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            yield Path(name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    def _start_connect(self) -> Started:
        lay, stack = self.layout, self.settings.stack
        props, log4j2 = self._kafka_files(
            "connect", config.connect_worker_properties(self.settings, lay)
        )
        argv = config.kafka_java_command(
            self.java(),
            stack.connect_heap,
            "org.apache.kafka.connect.cli.ConnectDistributed",
            props,
            log4j2,
        )
        # Connector configs name secrets as ${env:NAME}; Connect resolves them from here.
        env = child_env(self.settings.connect_env())  # HW_KAFKA_PASSWORD among them
        popen = self._spawn("connect", argv, lay.kafka_home, env)
        return Started("connect", time.monotonic(), popen)

    def _start_elasticsearch(self) -> Started:
        lay, user = self.layout, self.user
        base = system.owned_dir(lay.service_dir("elasticsearch"), user)
        conf = lay.elasticsearch_conf
        if not (conf / "jvm.options").exists():
            shutil.copytree(lay.elasticsearch_home / "config", conf, dirs_exist_ok=True)
        (conf / "jvm.options.d").mkdir(exist_ok=True)
        (conf / "elasticsearch.yml").write_text(config.elasticsearch_yml(self.settings, lay))
        (conf / "jvm.options.d" / "headwater.options").write_text(
            config.elasticsearch_jvm_options(self.settings)
        )
        for sub in ("data", "logs", "tmp"):
            (base / sub).mkdir(exist_ok=True)
        if self.settings.stack.secure:
            self._ensure_certificates(conf)
        system.chown(base, user, recursive=True)
        env = child_env(
            {
                "ES_JAVA_HOME": str(self.java().parent.parent),
                "ES_PATH_CONF": str(conf),
                "ES_TMPDIR": str(base / "tmp"),
            },
            user=user,
        )
        env.pop("ES_JAVA_OPTS", None)
        if self.settings.stack.secure:
            self._set_bootstrap_password(env, base)
        argv = self._as_user([str(lay.elasticsearch_home / "bin" / "elasticsearch")])
        popen = self._spawn("elasticsearch", argv, base, env)
        return Started("elasticsearch", time.monotonic(), popen)

    def _ensure_certificates(self, conf: Path) -> None:
        """A CA and an HTTP certificate for Elasticsearch; kept while they cover the host."""
        host, _ = config.host_port(self.settings.elasticsearch.url, 9200)
        hosts = [host]
        paths = {role: conf / rel for role, rel in config.ES_CERTS.items()}
        if all(path.exists() for path in paths.values()) and tls.cert_covers(
            paths["cert"].read_bytes(), paths["ca"].read_bytes(), hosts
        ):
            return
        ca = tls.new_ca()
        server = tls.new_server_cert(ca, hosts)
        tls.write_private(paths["key"], server.key)
        paths["cert"].write_bytes(server.cert)
        paths["ca"].write_bytes(ca.cert)  # the CA's key is not kept: nothing else is signed

    def _set_bootstrap_password(self, env: dict[str, str], base: Path) -> None:
        """The `elastic` user's password, in Elasticsearch's keystore (read from stdin)."""
        es = self.settings.elasticsearch
        if es.password is None:
            raise StackError("HW_ES_PASSWORD must be set for the secured stack (`make setup`)")
        tool = str(self.layout.elasticsearch_home / "bin" / "elasticsearch-keystore")
        if not (self.layout.elasticsearch_conf / "elasticsearch.keystore").exists():
            self._run_logged("elasticsearch", self._as_user([tool, "create"]), cwd=base, env=env)
        log = self._log("elasticsearch")
        with log.open("ab") as out:
            proc = subprocess.run(
                self._as_user([tool, "add", "--force", "--stdin", "bootstrap.password"]),
                input=es.password.get_secret_value().encode(),
                cwd=base,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if proc.returncode != 0:
            raise ServiceFailed(
                "elasticsearch", f"elasticsearch-keystore exited {proc.returncode}", log
            )

    def _starter(self, name: str) -> Callable[[], Started]:
        return {
            "postgres": self._start_postgres,
            "kafka": self._start_kafka,
            "connect": self._start_connect,
            "elasticsearch": self._start_elasticsearch,
        }[name]

    def stale_plugins(self, name: str) -> bool:
        """Whether our running `name` has not loaded the analysis plugin build now installed."""
        if name != "elasticsearch":
            return False
        installed = analysis_plugin.installed_version(self.layout.elasticsearch_home)
        return analysis_plugin.needs_restart(installed, elasticsearch_plugins(self.settings))

    def ensure_started(self, name: str) -> Started | None:
        """Start `name` unless our process already runs; None when it was already healthy.

        A healthy Elasticsearch that loaded another build of the analysis plugin is restarted.
        """
        service = self.services[name]
        status = self.status_of(name)
        why = "starting"
        if status.state is State.HEALTHY:
            if not self.stale_plugins(name):
                return None
            self.stop(name)
            status, why = self.status_of(name), "restarting to load the new analysis plugin"
        if status.state is State.UNHEALTHY:  # ours, still starting (or hung): wait for it
            return Started(name, time.monotonic())
        if status.state is State.EXTERNAL:
            raise StackError(
                f"{name}: port {service.port} is answered by a process this stack did not start; "
                "stop it (or `docker compose down`) first"
            )
        taken = self._ports_taken(service)
        if taken:
            raise StackError(
                f"{name}: port(s) {', '.join(map(str, taken))} already in use by another process"
            )
        self.layout.pid_file(name).unlink(missing_ok=True)  # stale
        return replace(self._starter(name)(), why=why)

    def _died(self, started: Started) -> str | None:
        if started.popen is not None:
            code = started.popen.poll()
            return None if code is None else f"the process exited with code {code}"
        if (
            time.monotonic() - started.at > START_GRACE_S
            and self.managed_pid(started.service) is None
        ):
            return "the process is not running"
        return None

    def after_healthy(self, name: str) -> None:
        if name == "postgres":
            self._ensure_databases()

    def _ensure_databases(self) -> None:
        import psycopg
        from psycopg import sql

        pg = self.settings.postgres
        with psycopg.connect(pg.dsn("postgres"), autocommit=True) as conn:
            for db in (pg.source_db, pg.analytics_db):
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (db,)
                ).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))

    # Stopping ------------------------------------------------------------------------------
    def stop(self, name: str) -> str:
        """Stop one service; returns what happened."""
        pid = self.managed_pid(name)
        if pid is None:
            self.layout.pid_file(name).unlink(missing_ok=True)
            return "not running"
        if name == "postgres":
            lay = self.layout
            proc = subprocess.run(
                self._as_user(
                    [
                        str(lay.postgres_bin / "pg_ctl"),
                        "stop",
                        "-D",
                        str(lay.postgres_data),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        str(int(STOP_TIMEOUT_S)),
                    ]
                ),
                capture_output=True,
                cwd=lay.service_dir("postgres"),
                env=child_env(user=self.user),
            )
            if proc.returncode == 0 and not procs.process_tree(pid):
                return "stopped"
        graceful = procs.terminate_tree(pid, STOP_TIMEOUT_S)
        self.layout.pid_file(name).unlink(missing_ok=True)
        return "stopped" if graceful else "killed"

    def sweep(self) -> list[int]:
        """Kill leftover servers of this data_dir whose pid we lost (e.g. an orphaned ES JVM)."""
        marker, me = str(self.layout.data_dir), os.getpid()
        found = []
        for pid in procs.parent_map():
            argv = procs.cmdline(pid)
            if (
                pid != me
                and argv
                and Path(argv[0]).name in SERVER_EXECUTABLES
                and any(marker in arg for arg in argv)
            ):
                found.append(pid)
        for pid in found:
            procs.terminate_tree(pid, 10)
        return found

    def busy_ports(self, timeout_s: float = 10.0) -> list[int]:
        """Ports of the stack still listening after waiting up to `timeout_s`."""
        ports = {p for s in self.services.values() for p in s.ports}
        deadline = time.monotonic() + timeout_s
        while True:
            busy = sorted(ports & procs.listening_ports())
            if not busy or time.monotonic() >= deadline:
                return busy
            time.sleep(0.3)


def wait_healthy(
    stack: Stack,
    started: dict[str, Started],
    deadline: float,
    on_update: Callable[[str, str], None],
) -> dict[str, float]:
    """Poll every service in `started` until all answer; seconds each took."""
    pending = dict(started)
    took: dict[str, float] = {}
    while pending:
        for name, start in list(pending.items()):
            probe = stack.probe(name)
            if probe.ok and (start.popen is None or start.popen.poll() is None):
                stack.after_healthy(name)
                took[name] = time.monotonic() - start.at
                on_update(name, "healthy")
                del pending[name]
                continue
            if "authentication failed" in probe.detail:
                raise ServiceFailed(
                    name,
                    f"{probe.detail}; the data directory {stack.layout.postgres_data} was "
                    "initialised with another HW_PG_PASSWORD (or HW_PG_USER)",
                    stack.layout.log_file(name),
                )
            died = stack._died(start)
            if died:
                raise ServiceFailed(name, died, stack.layout.log_file(name))
            if time.monotonic() > deadline:
                raise ServiceFailed(
                    name,
                    f"not healthy after {stack.settings.stack.up_timeout_s:.0f}s "
                    f"(HW_STACK_UP_TIMEOUT_S); last answer: {probe.detail or 'none'}",
                    stack.layout.log_file(name),
                )
            on_update(name, f"starting ({probe.detail or 'waiting'})")
        if pending:
            time.sleep(1.0)
    return took


def up(stack: Stack, on_update: Callable[[str, str], None]) -> UpReport:
    """Start what is not running, in order, and wait until everything is healthy."""
    stack.check_installed()
    raise_open_files_limit()  # inherited by every server started below
    report = UpReport()
    deadline = time.monotonic() + stack.settings.stack.up_timeout_s

    def launch(names: tuple[str, ...]) -> dict[str, Started]:
        launched = {}
        for name in names:
            started = stack.ensure_started(name)
            if started is None:
                report.already_healthy.append(name)
                stack.after_healthy(name)
                on_update(name, "healthy (already running)")
            else:
                report.started.append(name)
                on_update(name, started.why)
                launched[name] = started
        return launched

    # Elasticsearch needs nothing else, so it starts alongside Kafka; Connect needs Kafka.
    report.seconds |= wait_healthy(stack, launch(("postgres",)), deadline, on_update)
    later = launch(("kafka", "elasticsearch"))
    kafka = {k: v for k, v in later.items() if k == "kafka"}
    report.seconds |= wait_healthy(stack, kafka, deadline, on_update)
    rest = {k: v for k, v in later.items() if k != "kafka"} | launch(("connect",))
    report.seconds |= wait_healthy(stack, rest, deadline, on_update)
    return report


def down(stack: Stack, on_update: Callable[[str, str], None]) -> list[int]:
    """Stop everything in reverse dependency order; returns ports still listening (none: ok)."""
    for name in STOP_ORDER:
        on_update(name, "stopping")
        on_update(name, stack.stop(name))
    stack.sweep()
    return stack.busy_ports()
