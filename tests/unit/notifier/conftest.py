"""Guard for the notifier unit tests: they are pure, so any DNS lookup or connection fails them."""

from __future__ import annotations

import socket
from typing import Any, NoReturn

import pytest


def _no_network(*args: Any, **kwargs: Any) -> NoReturn:
    pytest.fail(f"a notifier unit test touched the network: {args!r}")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every resolver and connect entry point fail the test."""
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
        monkeypatch.setattr(socket, name, _no_network)
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", _no_network)
