"""`newsalert kafka up | down | status`: the local one-node broker, without Docker.

`up` fetches the broker's jars once (Maven), starts the broker in the background on
LocalKafkaSettings ports and creates every newsalert topic; `down` stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from services.common.broker import BrokerError, BrokerStatus, LocalBroker
from services.common.kafka import KafkaError, TopicCreationError, ensure_topics
from services.common.settings import KafkaSettings, LocalKafkaSettings
from services.common.topics import build_topics


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `kafka` command group to the `newsalert` parser.

    Args:
        subparsers: the top-level subcommand collection.
    """
    parser = subparsers.add_parser(
        "kafka",
        help="run a local one-node Kafka broker (no Docker needed)",
        description="Run a real Kafka broker on 127.0.0.1 from Maven Central jars.",
    )
    actions = parser.add_subparsers(dest="kafka_action", required=True, metavar="ACTION")

    up = actions.add_parser("up", help="start the broker in the background and create topics")
    up.add_argument(
        "--wait", type=float, default=60.0, metavar="S", help="seconds to wait for readiness"
    )
    up.set_defaults(handler=_up)

    down = actions.add_parser("down", help="stop the broker")
    down.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="seconds before SIGKILL"
    )
    down.set_defaults(handler=_down)

    status = actions.add_parser("status", help="is it running, and where (exit 1 if not)")
    status.set_defaults(handler=_status)


def _error(message: str) -> int:
    print(f"newsalert kafka: {message}", file=sys.stderr)
    return 1


def _describe(st: BrokerStatus) -> None:
    print(f"  bootstrap: {st.bootstrap}")
    print(f"  pid:       {st.pid}")
    print(f"  log:       {st.log_file}")
    print(f"  data:      {st.data_dir}")


def _up(args: argparse.Namespace) -> int:
    local = LocalKafkaSettings()
    kafka = KafkaSettings()
    broker = LocalBroker.from_settings(local)
    try:
        current = broker.status()
        if current.running:
            print(f"Kafka is already running on {current.bootstrap} (pid {current.pid})")
            st = current
        else:
            if not broker.jars_ready():
                print(f"fetching Kafka {local.kafka_version} jars with Maven (once) ...")
            broker.ensure_jars()
            began = time.monotonic()
            st = broker.start(wait_s=args.wait)
            broker.detach()
            print(
                f"Kafka {local.kafka_version} ready on {st.bootstrap} "
                f"in {time.monotonic() - began:.1f} s"
            )
    except BrokerError as exc:  # BrokerToolMissing included: its message names the package
        return _error(str(exc))
    _describe(st)

    assert st.bootstrap is not None  # a running broker always has its port in server.properties
    topics = build_topics(kafka.topic_prefix, kafka.partitions, len(kafka.retry_schedule_s))
    specs = topics.all()
    try:
        # One node holds one replica, whatever KafkaSettings asks for a real cluster.
        created = asyncio.run(ensure_topics(st.bootstrap, specs, replication_factor=1))
    except (TopicCreationError, KafkaError, OSError, TimeoutError) as exc:
        return _error(f"broker is up but topics could not be created: {exc}")
    print(
        f"  topics:    {len(created)} created, {len(specs) - len(created)} already there "
        f"(prefix {kafka.topic_prefix!r})"
    )
    if kafka.bootstrap_servers != st.bootstrap:
        print(
            f"  note: NEWSALERT_BOOTSTRAP_SERVERS is {kafka.bootstrap_servers!r}, "
            f"not this broker's {st.bootstrap!r}"
        )
    print("stop it with: newsalert kafka down")
    return 0


def _down(args: argparse.Namespace) -> int:
    broker = LocalBroker.from_settings(LocalKafkaSettings())
    st = broker.status()
    if not st.running:
        print("Kafka is not running")
        return 0
    try:
        broker.stop(timeout_s=args.timeout)
    except OSError as exc:
        return _error(f"could not stop pid {st.pid}: {exc}")
    print(f"Kafka stopped (pid {st.pid}); data kept in {st.data_dir}")
    return 0


def _status(args: argparse.Namespace) -> int:
    st = LocalBroker.from_settings(LocalKafkaSettings()).status()
    print("Kafka is running" if st.running else "Kafka is not running")
    _describe(st)
    return 0 if st.running else 1
