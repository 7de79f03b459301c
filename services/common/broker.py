"""A real one-node Apache Kafka broker (KRaft) run from Maven Central jars, without Docker.

Used by `newsalert kafka up|down|status` and by the integration-test session fixture. The jars
are fetched once by Maven into `<cache_dir>/kafka-<version>/libs`; each broker instance owns a
data dir holding its `server.properties`, `log4j2.properties`, KRaft log dirs, log file and pid
file, so several brokers (the CLI one on 9092, test ones on free ports) run side by side.

The pure parts (property rendering, cluster ids, port choice) are separate functions so unit
tests cover them without starting a JVM. The settings follow the kafka-local design note
(shared/design/kafka-local.md), which records what was tried on this kind of machine.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from services.common.kafka import wait_until_ready
from services.common.settings import LocalKafkaSettings

# The POM that lists the broker's jars; the repository layout puts it two levels above here.
DEFAULT_POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"

# A local broker shares a few cores with the services it serves, and lives for a test run or
# a demo. The C2 compiler and G1's concurrent threads took half its CPU in the matcher
# benchmark (64% of a core; 31% with these flags, at the same throughput): C1 alone compiles
# in a fraction of the time, and the serial collector works only while it pauses.
JVM_FLAGS = (
    "-Xms512m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)
LOOPBACK = "127.0.0.1"
NODE_ID = 1

_JAVA_HINT = "apt-get install -y openjdk-17-jre-headless"
_MAVEN_HINT = "apt-get install -y maven"
_JARS_MARKER = ".complete"
_LOG_TAIL_LINES = 20


class BrokerError(RuntimeError):
    """The local broker could not be prepared, started or stopped."""


class BrokerToolMissing(BrokerError):
    """`java` or `mvn` is not on PATH; the message names the package to install."""


@dataclass(frozen=True)
class BrokerStatus:
    """What `status()` reports about one local broker."""

    running: bool
    pid: int | None
    bootstrap: str | None
    log_file: Path
    data_dir: Path


# ---------------------------------------------------------------------------------------------
# Pure helpers


def new_cluster_id() -> str:
    """A KRaft cluster id: URL-safe base64 of a random UUID, 22 chars, no padding.

    Returns:
        The id. Ids starting with '-' are redrawn, since StorageTool would read one as an option.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cid.startswith("-"):
            return cid


def render_server_properties(
    *, port: int, controller_port: int, log_dirs: Path, node_id: int = NODE_ID
) -> str:
    """The `server.properties` of a one-node combined broker+controller on loopback.

    Args:
        port: client (PLAINTEXT) port.
        controller_port: KRaft controller port.
        log_dirs: where the broker keeps partition data and the metadata log.
        node_id: the node's id, also its voter id.

    Returns:
        The file's text.
    """
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        # A static voter set, so StorageTool format needs no --standalone.
        "controller.quorum.voters": f"{node_id}@{LOOPBACK}:{controller_port}",
        "listeners": f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dirs),
        # One node cannot hold more than one replica of anything.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        # Speed: one offsets partition and no rebalance delay keep consumer groups snappy.
        "offsets.topic.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Topics are created explicitly by ensure_topics; a typo must not make a new one.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def render_log4j2_properties() -> str:
    """A log4j2 config that writes to stdout, which the launcher sends to the broker's log file.

    Returns:
        The file's text.
    """
    return (
        "name=newsalert-local-kafka\n"
        # log4j2's own shutdown hook races Kafka's and drops the last lines of a clean shutdown.
        "shutdownHook=disable\n"
        "appender.stdout.type=Console\n"
        "appender.stdout.name=STDOUT\n"
        "appender.stdout.target=SYSTEM_OUT\n"
        "appender.stdout.layout.type=PatternLayout\n"
        "appender.stdout.layout.pattern=[%d] %p %m (%c)%n\n"
        "rootLogger.level=INFO\n"
        "rootLogger.appenderRef.stdout.ref=STDOUT\n"
        # Per-request and state-change chatter would bury the lines that explain a failure.
        "logger.request.name=kafka.request.logger\n"
        "logger.request.level=WARN\n"
        "logger.state.name=state.change.logger\n"
        "logger.state.level=WARN\n"
    )


def parse_properties(text: str) -> dict[str, str]:
    """Parse the simple `key=value` lines `render_server_properties` writes.

    Args:
        text: properties text.

    Returns:
        Key to value; comments and blank lines are skipped.
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "!")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1, chosen by the kernel.

    Args:
        count: how many ports.

    Returns:
        The ports. All sockets are held open until every port is picked, so they differ; another
        process could still take one before the broker binds it, which start() reports.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the broker binds: connections of a previous run lingering in TIME_WAIT do not
        # keep it from starting again on the same port, so they must not count here either.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return True
        return False


def require_tool(name: str, install_hint: str) -> str:
    """The absolute path of `name` on PATH.

    Args:
        name: executable name, e.g. "java".
        install_hint: the command that installs it.

    Returns:
        Its path.

    Raises:
        BrokerToolMissing: it is not on PATH.
    """
    path = shutil.which(name)
    if path is None:
        raise BrokerToolMissing(f"`{name}` not found on PATH; install it with: {install_hint}")
    return path


def tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a text file, or a note when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _pid_alive(pid: int) -> bool:
    # A zombie (exited, not yet reaped) still answers kill(0); /proc tells them apart on Linux.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state = stat.rpartition(")")[2].split()[:1]
    return state != ["Z"]


def _cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------------
# The process manager


@dataclass
class LocalBroker:
    """One local broker: its jars (shared, per version) and its own data dir.

    Ports of 0 mean "pick free 127.0.0.1 ports at start()". Nothing is touched on construction.
    """

    data_dir: Path
    cache_dir: Path
    version: str
    port: int = 0
    controller_port: int = 0
    pom: Path = DEFAULT_POM
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # The JVM runs with cwd=data_dir: a relative path would then point somewhere else.
        self.data_dir = self.data_dir.expanduser().resolve()
        self.cache_dir = self.cache_dir.expanduser().resolve()

    @classmethod
    def from_settings(
        cls, settings: LocalKafkaSettings, data_dir: Path | None = None
    ) -> LocalBroker:
        """The broker `newsalert kafka up` runs, as LocalKafkaSettings describes it.

        Args:
            settings: version, cache dir and ports.
            data_dir: defaults to `<cache_dir>/local-broker`.

        Returns:
            The (not yet started) broker.
        """
        return cls(
            data_dir=data_dir or settings.cache_dir / "local-broker",
            cache_dir=settings.cache_dir,
            version=settings.kafka_version,
            port=settings.kafka_port,
            controller_port=settings.kafka_controller_port,
        )

    # Paths ---------------------------------------------------------------------------------

    @property
    def libs_dir(self) -> Path:
        """Where this version's jars live, shared by every broker using the same cache."""
        return self.cache_dir / f"kafka-{self.version}" / "libs"

    @property
    def log_file(self) -> Path:
        """The broker's stdout/stderr."""
        return self.data_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        """Holds the broker's pid while it runs."""
        return self.data_dir / "broker.pid"

    @property
    def server_properties(self) -> Path:
        """The rendered broker config."""
        return self.data_dir / "server.properties"

    @property
    def log4j2_properties(self) -> Path:
        """The rendered logging config."""
        return self.data_dir / "log4j2.properties"

    @property
    def _cluster_id_file(self) -> Path:
        return self.data_dir / "cluster.id"

    @property
    def _classpath(self) -> str:
        return str(self.libs_dir / "*")

    # Jars ----------------------------------------------------------------------------------

    def jars_ready(self) -> bool:
        """Whether a complete Maven copy of this version's jars is in the cache."""
        return (self.libs_dir.parent / _JARS_MARKER).is_file() and any(self.libs_dir.glob("*.jar"))

    def ensure_jars(self, timeout_s: float = 900) -> Path:
        """Copy the broker's jars from Maven Central into the cache, once per version.

        A marker written after Maven succeeds tells a complete copy from an interrupted one,
        which is redone. A file lock serialises concurrent callers (two test sessions).

        Args:
            timeout_s: limit for the Maven run.

        Returns:
            The libs dir.

        Raises:
            BrokerToolMissing: the jars are missing and `mvn` is not on PATH.
            BrokerError: Maven failed.
        """
        if self.jars_ready():
            return self.libs_dir
        version_dir = self.libs_dir.parent
        version_dir.mkdir(parents=True, exist_ok=True)
        with _file_lock(version_dir / ".lock"):
            if self.jars_ready():  # another process finished while we waited
                return self.libs_dir
            mvn = require_tool("mvn", _MAVEN_HINT)
            if not self.pom.is_file():
                raise BrokerError(f"the broker POM is missing: {self.pom}")
            (version_dir / _JARS_MARKER).unlink(missing_ok=True)
            shutil.rmtree(self.libs_dir, ignore_errors=True)
            cmd = [
                mvn, "-q", "-B", "-f", str(self.pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={self.libs_dir}",
                f"-Dkafka.version={self.version}",
            ]  # fmt: skip
            try:
                done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                    cmd, capture_output=True, text=True, timeout=timeout_s, check=False
                )
            except subprocess.TimeoutExpired as exc:
                raise BrokerError(f"Maven did not finish within {timeout_s:.0f} s") from exc
            if done.returncode != 0 or not any(self.libs_dir.glob("*.jar")):
                output = "\n".join((done.stdout + done.stderr).splitlines()[-_LOG_TAIL_LINES:])
                raise BrokerError(
                    f"Maven could not fetch Kafka {self.version} (exit {done.returncode}):\n"
                    f"{output}"
                )
            (version_dir / _JARS_MARKER).write_text(f"kafka {self.version}\n")
        return self.libs_dir

    # Process -------------------------------------------------------------------------------

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _is_ours(self, pid: int) -> bool:
        # A pid file can outlive a reboot; check the pid still runs *this* broker's config.
        if not _pid_alive(pid):
            return False
        cmdline = _cmdline(pid)
        if cmdline is None:  # no /proc: trust kill(0)
            return True
        return "kafka.Kafka" in cmdline and str(self.server_properties) in cmdline

    def _bootstrap(self) -> str | None:
        port = self.port
        if port == 0:
            # Ports were picked by another process's start(); they are in the rendered config.
            try:
                props = parse_properties(self.server_properties.read_text())
            except FileNotFoundError:
                return None
            listener = props.get("advertised.listeners", "")
            port = int(listener.rpartition(":")[2]) if listener else 0
        return f"{LOOPBACK}:{port}" if port else None

    def status(self) -> BrokerStatus:
        """Whether this broker's process runs, and where to find it.

        Returns:
            The status; `running` means the process is alive, not necessarily ready.
        """
        pid = self._read_pid()
        running = pid is not None and self._is_ours(pid)
        return BrokerStatus(
            running=running,
            pid=pid if running else None,
            bootstrap=self._bootstrap(),
            log_file=self.log_file,
            data_dir=self.data_dir,
        )

    def start(self, wait_s: float = 60) -> BrokerStatus:
        """Format the data dir if new, launch the broker in the background and wait until ready.

        The process runs in its own session, so it outlives the CLI that started it and
        Ctrl-C in that terminal does not reach it. Already running: returns its status.

        Args:
            wait_s: how long to wait for the broker to answer a metadata request.

        Returns:
            The running broker's status.

        Raises:
            BrokerToolMissing: `java` is not on PATH.
            BrokerError: the jars are missing, a port is taken, formatting failed, or the
                broker died or did not become ready in time (the message holds its log tail).
        """
        java = require_tool("java", _JAVA_HINT)
        current = self.status()
        if current.running:
            return current
        if not self.jars_ready():
            raise BrokerError(
                f"Kafka {self.version} jars are not in {self.libs_dir}; run ensure_jars"
            )
        self.pid_file.unlink(missing_ok=True)

        if self.port == 0 or self.controller_port == 0:
            self.port, self.controller_port = free_ports(2)
        for port in (self.port, self.controller_port):
            if port_in_use(port):
                raise BrokerError(f"port {LOOPBACK}:{port} is already in use")

        self.data_dir.mkdir(parents=True, exist_ok=True)
        kraft_dir = self.data_dir / "kraft-logs"
        self.server_properties.write_text(
            render_server_properties(
                port=self.port, controller_port=self.controller_port, log_dirs=kraft_dir
            )
        )
        self.log4j2_properties.write_text(render_log4j2_properties())
        self._format(java)

        # Keep the previous run's log: it explains the last crash.
        if self.log_file.exists():
            self.log_file.replace(self.log_file.with_suffix(".log.1"))
        cmd = [
            java, *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={self.log4j2_properties}",
            "-cp", self._classpath,
            "kafka.Kafka", str(self.server_properties),
        ]  # fmt: skip
        started = time.monotonic()
        with self.log_file.open("wb") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                cmd,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        try:
            self._wait_ready(started + wait_s)
        except BaseException:
            self._kill_after_failed_start()
            raise
        return self.status()

    def _format(self, java: str) -> None:
        if self._cluster_id_file.is_file():
            cluster_id = self._cluster_id_file.read_text().strip()
        else:
            cluster_id = new_cluster_id()
            self._cluster_id_file.write_text(cluster_id + "\n")
        cmd = [
            java, "-Xmx256m",
            f"-Dlog4j2.configurationFile={self.log4j2_properties}",
            "-cp", self._classpath,
            "kafka.tools.StorageTool", "format",
            "-t", cluster_id,
            "-c", str(self.server_properties),
            # A restart keeps its data: formatting an already formatted dir is a no-op.
            "--ignore-formatted",
        ]  # fmt: skip
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                cmd, capture_output=True, text=True, timeout=120, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError("Kafka StorageTool format did not finish within 120 s") from exc
        if done.returncode != 0:
            output = "\n".join((done.stdout + done.stderr).splitlines()[-_LOG_TAIL_LINES:])
            raise BrokerError(
                f"Kafka StorageTool format failed (exit {done.returncode}):\n{output}"
            )

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None
        bootstrap = f"{LOOPBACK}:{self.port}"
        # The probe is async (aiokafka); a private thread gives it its own event loop, so this
        # works whether or not the caller already runs one, and never replaces the caller's.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="broker-probe") as pool:
            while True:
                if self._proc.poll() is not None:
                    raise BrokerError(
                        f"the Kafka broker exited with code {self._proc.returncode} during "
                        f"startup; last lines of {self.log_file}:\n{tail(self.log_file)}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BrokerError(
                        f"the Kafka broker did not answer on {bootstrap} in time; last lines of "
                        f"{self.log_file}:\n{tail(self.log_file)}"
                    )
                attempt = min(2.0, remaining)
                try:
                    pool.submit(_probe, bootstrap, attempt).result()
                except TimeoutError:
                    continue
                return

    def detach(self) -> None:
        """Leave the started broker running after this process exits (the CLI's `up`).

        `stop()` still works later, from any process, through the pid file.
        """
        if self._proc is not None and self._proc.poll() is None:
            # Popen warns (ResourceWarning) when a still-running child's handle is collected;
            # outliving us is the point here, and init adopts and reaps the orphan.
            self._proc.returncode = 0
        self._proc = None

    def _kill_after_failed_start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self.pid_file.unlink(missing_ok=True)

    def stop(self, timeout_s: float = 30) -> bool:
        """Stop the broker: SIGTERM (a clean controlled shutdown), then SIGKILL after `timeout_s`.

        Args:
            timeout_s: how long to wait for the clean shutdown.

        Returns:
            True when a running broker was stopped, False when none was running.
        """
        pid = self._read_pid()
        if pid is None or not self._is_ours(pid):
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout_s):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 10)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            # Our own child: wait() also reaps it, so it leaves no zombie.
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True


def _probe(bootstrap: str, timeout_s: float) -> None:
    asyncio.run(wait_until_ready(bootstrap, timeout_s))


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
