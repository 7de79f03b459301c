"""SSRF protection for customer webhook URLs: which URLs and addresses we may POST to.

Two checks, both pure:

* `check_url` at registration (and again before each delivery): the URL's syntax, scheme, port
  and host. A host written as an IP address, in any spelling the C resolver accepts (decimal
  `2130706433`, hex `0x7f.0.0.1`, octal `0177.0.0.1`, short `127.1`), is normalised and its
  address checked at once; a host name is IDNA-normalised and refused if it names a local zone.
* `check_address` / `filter_resolved` at connection time, on every address the name resolved
  to, so a name that resolved to a public address at registration cannot later be pointed at
  10.0.0.1 or 169.254.169.254 (DNS rebinding). The HTTP client must connect only to addresses
  `filter_resolved` returned.

`UrlPolicy` carries the settings: http for local use, and an allow-list of networks and host
names for local and test setups.

No I/O.
"""

from __future__ import annotations

import ipaddress
import string
from dataclasses import dataclass
from enum import StrEnum
from typing import Self
from urllib.parse import SplitResult, urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS = {"http": 80, "https": 443}

# Names that can only mean "a machine on our side": RFC 6761 (localhost), RFC 6762 (mDNS .local),
# the cloud providers' internal zones (metadata.google.internal), and common resolver defaults.
LOCAL_NAME_SUFFIXES = ("localhost", "local", "internal", "localdomain", "home.arpa")

_HOST_NAME_CHARS = frozenset(string.ascii_lowercase + string.digits + "-_.")
_HEX_DIGITS = frozenset(string.hexdigits)
_OCTAL_DIGITS = frozenset(string.octdigits)
_DECIMAL_DIGITS = frozenset(string.digits)

# IDNA 2003 (Python's codec) and IDNA 2008 (browsers, the `idna` package) map these differently
# (faß.de is fass.de in one and xn--fa-hia.de in the other): refusing them keeps the host we
# check the host the customer meant.
_IDNA_DEVIATIONS = {"\u00df": "ß", "\u03c2": "ς", "\u200c": "ZWNJ", "\u200d": "ZWJ"}

_METADATA_ADDRESS = ipaddress.IPv4Address("169.254.169.254")


class Reason(StrEnum):
    """Why a URL or address was refused: stable codes for callers, tests and metrics."""

    CONTROL_CHARACTER = "control-character"
    MALFORMED = "malformed"
    SCHEME = "scheme"
    USERINFO = "userinfo"
    PORT = "port"
    ZONE_ID = "zone-id"
    LOCAL_NAME = "local-name"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link-local"
    SHARED = "shared"
    MULTICAST = "multicast"
    UNSPECIFIED = "unspecified"
    RESERVED = "reserved"
    TUNNEL = "tunnel"
    NOT_GLOBAL = "not-global"
    NO_ALLOWED_ADDRESS = "no-allowed-address"


class UrlRefused(ValueError):
    """A webhook URL or address we must not connect to.

    Attributes:
        reason: The stable code of the refusal.
        message: What is wrong, in words fit for the customer.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class UrlPolicy:
    """What the deployment allows beyond public https URLs.

    Attributes:
        allow_http: Whether plain http is accepted (local use only).
        allowed_networks: Ranges accepted even though they are not public, e.g. 127.0.0.0/8
            in tests.
        allowed_hosts: Host names accepted regardless of their name and of the addresses they
            resolve to; lower-case, IDNA (ASCII) form, no trailing dot.
        allowed_ports: The ports a URL may name (after defaulting); None accepts any.
    """

    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()
    allowed_ports: frozenset[int] | None = None

    @classmethod
    def from_strings(cls, allow_http: bool, allow: list[str]) -> Self:
        """Build a policy from settings strings.

        Args:
            allow_http: Whether plain http is accepted.
            allow: Allow-list entries, each a CIDR (`127.0.0.0/8`), an IP address (`::1`,
                `[::1]`) or a host name (`webhook-sink`). Blank entries are ignored.

        Returns:
            The policy.

        Raises:
            ValueError: An entry is none of these, or is a CIDR with host bits set.
        """
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in allow:
            entry = raw.strip()
            if not entry:
                continue
            if entry.startswith("[") and entry.endswith("]"):
                entry = entry[1:-1]
            try:
                networks.append(ipaddress.ip_network(entry, strict=True))
                continue
            except ValueError:
                pass
            try:
                loose = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                pass
            else:
                raise ValueError(
                    f"allow-list entry {raw!r} has host bits set: did you mean {loose}?"
                )
            try:
                host = _normalise_host_name(entry)
            except UrlRefused as exc:
                raise ValueError(f"allow-list entry {raw!r}: {exc.message}") from None
            if _ends_in_number(host):
                raise ValueError(f"allow-list entry {raw!r} is neither an IP address nor a name")
            hosts.add(host)
        return cls(
            allow_http=allow_http,
            allowed_networks=tuple(networks),
            allowed_hosts=frozenset(hosts),
        )


@dataclass(frozen=True)
class ParsedTarget:
    """A URL that passed `check_url`, in the form the HTTP client must use.

    Attributes:
        scheme: `http` or `https`.
        host: The normalised host: IDNA ASCII lower-case name without trailing dot, or the
            canonical IP address (IPv6 without brackets).
        port: The port, defaulted from the scheme.
        ip: The address when the host is an IP literal, else None (resolve at connection time
            and pass the answers through `filter_resolved`).
        url: The URL rebuilt with the normalised host; send this one, not the original.
    """

    scheme: str
    host: str
    port: int
    ip: IPAddress | None
    url: str


def check_url(url: str, policy: UrlPolicy) -> ParsedTarget:
    """Check a webhook URL's syntax, scheme, port and host.

    Args:
        url: The URL as the customer gave it.
        policy: The deployment's policy.

    Returns:
        The normalised target.

    Raises:
        UrlRefused: The URL must not be used; `reason` says why.
    """
    _refuse_control_characters(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UrlRefused(Reason.MALFORMED, f"URL is malformed: {exc}") from None

    scheme = parts.scheme
    if not scheme:
        raise UrlRefused(Reason.SCHEME, "URL has no scheme: use https://")
    if scheme not in DEFAULT_PORTS:
        raise UrlRefused(Reason.SCHEME, f"scheme {scheme} is not allowed: use https")
    if scheme == "http" and not policy.allow_http:
        raise UrlRefused(Reason.SCHEME, "scheme http is not allowed: use https")

    netloc = parts.netloc
    if not netloc:
        raise UrlRefused(Reason.MALFORMED, "URL has no host")
    if "@" in netloc:
        raise UrlRefused(Reason.USERINFO, "URL contains credentials (user:pass@): not allowed")
    # Browsers read a backslash as a slash and Python does not, so the two would disagree on
    # where the host ends.
    if "\\" in netloc:
        raise UrlRefused(Reason.MALFORMED, "URL contains a backslash in its host")

    raw_host, raw_port = _split_host_port(netloc)
    port = _parse_port(raw_port, scheme, policy)
    host, ip = _parse_host(raw_host)

    if ip is not None:
        check_address(ip, policy)
    elif host not in policy.allowed_hosts:
        _refuse_local_name(host)

    return ParsedTarget(
        scheme=scheme, host=host, port=port, ip=ip, url=_rebuild(parts, host, ip, raw_port)
    )


def check_address(ip: str | IPAddress, policy: UrlPolicy) -> None:
    """Check one address the client is about to connect to.

    Refuses everything that is not a public unicast address, and looks inside the IPv6 forms
    that carry an IPv4 address (IPv4-mapped, 6to4, NAT64) to check that one.

    Args:
        ip: The address, as text from the resolver or parsed.
        policy: The deployment's policy; addresses in `allowed_networks` pass.

    Raises:
        UrlRefused: The address must not be used; `reason` says why.
    """
    address = _parse_address(ip) if isinstance(ip, str) else ip
    scope = address.scope_id if isinstance(address, ipaddress.IPv6Address) else None
    if scope is not None:
        # The scope only selects an interface; classify the address itself.
        address = ipaddress.IPv6Address(int(address))
    if _is_allowed(address, policy):
        return
    refusal = _classify(address)
    if refusal is not None:
        reason, description = refusal
        raise UrlRefused(reason, f"address {address} is {description}")
    if scope is not None:
        raise UrlRefused(
            Reason.ZONE_ID, f"address {address}%{scope} has a zone identifier: not allowed"
        )


def filter_resolved(host: str, addresses: list[str], policy: UrlPolicy) -> list[str]:
    """Keep the resolved addresses of `host` that the client may connect to.

    A name that resolves to both a public and a private address is usable only through the
    public one. A host in `policy.allowed_hosts` keeps all its (valid) addresses.

    Args:
        host: The host name that was resolved.
        addresses: The resolver's answers, as text.
        policy: The deployment's policy.

    Returns:
        The allowed addresses, in the resolver's order, as given.

    Raises:
        UrlRefused: No address is allowed (reason `no-allowed-address`), or an answer is not
            an IP address.
    """
    name = host.strip("[]").lower().rstrip(".")
    if not addresses:
        raise UrlRefused(Reason.NO_ALLOWED_ADDRESS, f"host {name} resolved to no address")
    if name in policy.allowed_hosts:
        for address in addresses:
            _parse_address(address)
        return list(addresses)
    kept: list[str] = []
    refusals: list[str] = []
    for address in addresses:
        try:
            check_address(address, policy)
        except UrlRefused as exc:
            refusals.append(exc.message)
        else:
            kept.append(address)
    if not kept:
        raise UrlRefused(
            Reason.NO_ALLOWED_ADDRESS,
            f"host {name} resolves to no allowed address: " + "; ".join(refusals),
        )
    return kept


def _refuse_control_characters(url: str) -> None:
    # Checked before parsing: urlsplit silently deletes CR, LF and tab, so what we checked would
    # not be what a less forgiving client sends (header injection, request smuggling).
    for char in url:
        if char in "\r\n\x00":
            raise UrlRefused(
                Reason.CONTROL_CHARACTER, "URL contains a control character (CR, LF or NUL)"
            )
        if char < " " or char == "\x7f":
            raise UrlRefused(
                Reason.CONTROL_CHARACTER, f"URL contains a control character (U+{ord(char):04X})"
            )
        if char == " ":
            raise UrlRefused(Reason.MALFORMED, "URL contains a space")


def _split_host_port(netloc: str) -> tuple[str, str | None]:
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise UrlRefused(Reason.MALFORMED, "URL has an unclosed [ in its host")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise UrlRefused(Reason.MALFORMED, f"unexpected {rest!r} after the host {host}")
        return host, rest[1:]
    host, colon, port = netloc.rpartition(":")
    if not colon:
        return netloc, None
    if ":" in host:
        raise UrlRefused(Reason.MALFORMED, "an IPv6 address in a URL must be in brackets")
    return host, port


def _parse_port(raw: str | None, scheme: str, policy: UrlPolicy) -> int:
    if raw is None:
        port = DEFAULT_PORTS[scheme]
    else:
        # Not int(): it would accept "+80", " 80", "8_0" and non-ASCII digits.
        if not raw or not set(raw) <= _DECIMAL_DIGITS or len(raw) > 5:
            raise UrlRefused(Reason.PORT, f"port {raw!r} is not a number from 1 to 65535")
        port = int(raw)
        if not 1 <= port <= 65535:
            raise UrlRefused(Reason.PORT, f"port {port} is not a number from 1 to 65535")
    if policy.allowed_ports is not None and port not in policy.allowed_ports:
        raise UrlRefused(Reason.PORT, f"port {port} is not allowed")
    return port


def _parse_host(raw: str) -> tuple[str, IPAddress | None]:
    if not raw:
        raise UrlRefused(Reason.MALFORMED, "URL has no host")
    if raw.startswith("["):
        inner = raw[1:-1]
        if "%" in inner:
            raise UrlRefused(
                Reason.ZONE_ID, f"IPv6 zone identifiers are not allowed in a URL ({raw})"
            )
        try:
            v6 = ipaddress.IPv6Address(inner)
        except ValueError:
            raise UrlRefused(Reason.MALFORMED, f"host {raw} is not a valid IPv6 address") from None
        return str(v6), v6
    if "%" in raw:
        lowered = raw.lower()
        if any(code in lowered for code in ("%0d", "%0a", "%00")):
            raise UrlRefused(
                Reason.CONTROL_CHARACTER, "URL contains a control character (CR, LF or NUL)"
            )
        # Some clients decode %-escapes in the host and some do not: refuse them all rather than
        # guess which host the client would reach.
        raise UrlRefused(Reason.MALFORMED, "host contains a percent-encoded character")
    host = _normalise_host_name(raw)
    if _ends_in_number(host):
        v4 = _parse_ipv4(host)
        if v4 is None:
            raise UrlRefused(
                Reason.MALFORMED, f"host {raw} looks like an IP address but is not a valid one"
            )
        return str(v4), v4
    return host, None


def _normalise_host_name(raw: str) -> str:
    """IDNA ASCII, lower-case, one trailing dot stripped; refuses what DNS cannot carry."""
    if not raw.isascii():
        for char, name in _IDNA_DEVIATIONS.items():
            if char in raw:
                raise UrlRefused(
                    Reason.MALFORMED,
                    f"host {raw} contains {name}, which IDNA 2003 and 2008 map differently",
                )
        try:
            # The codec also maps full-width digits and dots, so "１２７。０。０。１" is caught as
            # 127.0.0.1 below.
            raw = raw.encode("idna").decode("ascii")
        except UnicodeError:
            raise UrlRefused(
                Reason.MALFORMED, f"host {raw} is not a valid internationalised name"
            ) from None
    host = raw.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host:
        raise UrlRefused(Reason.MALFORMED, "URL has no host")
    bad = sorted(set(host) - _HOST_NAME_CHARS)
    if bad:
        raise UrlRefused(Reason.MALFORMED, f"host {host} contains {bad[0]!r}")
    if len(host) > 253 or any(not 1 <= len(label) <= 63 for label in host.split(".")):
        raise UrlRefused(Reason.MALFORMED, f"host {host} has an empty or over-long label")
    return host


def _ends_in_number(host: str) -> bool:
    # The WHATWG URL rule: a host whose last label is numeric is an IPv4 address or invalid,
    # never a name to hand to DNS (where the C resolver would read it as an address anyway).
    last = host.rsplit(".", 1)[-1]
    if last[:2] == "0x":
        return set(last[2:]) <= _HEX_DIGITS
    return bool(last) and set(last) <= _DECIMAL_DIGITS


def _parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """An address in any spelling inet_aton accepts (`127.1`, `0x7f.1`, `017700000001`)."""
    parts = host.split(".")
    if len(parts) > 4:
        return None
    numbers: list[int] = []
    for part in parts:
        number = _parse_ipv4_number(part)
        if number is None:
            return None
        numbers.append(number)
    # a.b.c.d; a.b.c (c fills 16 bits); a.b (b fills 24 bits); a (32 bits).
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (4 - len(leading)):
        return None
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _parse_ipv4_number(part: str) -> int | None:
    if part[:2] == "0x":
        digits = part[2:]
        if not set(digits) <= _HEX_DIGITS:
            return None
        return int(digits, 16) if digits else 0
    if not part or not set(part) <= _DECIMAL_DIGITS:
        return None
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8) if set(part) <= _OCTAL_DIGITS else None
    return int(part)


def _refuse_local_name(host: str) -> None:
    for suffix in LOCAL_NAME_SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            raise UrlRefused(Reason.LOCAL_NAME, f"host {host} is a local name: not allowed")
    # A single label is completed from the resolver's search domains, i.e. our own network.
    if "." not in host:
        raise UrlRefused(
            Reason.LOCAL_NAME,
            f"host {host} is not a fully qualified name: use the public domain name",
        )


def _rebuild(parts: SplitResult, host: str, ip: IPAddress | None, raw_port: str | None) -> str:
    netloc = f"[{host}]" if isinstance(ip, ipaddress.IPv6Address) else host
    if raw_port is not None:
        netloc += f":{int(raw_port)}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _parse_address(text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise UrlRefused(Reason.MALFORMED, f"address {text!r} is not an IP address") from None


def _is_allowed(address: IPAddress, policy: UrlPolicy) -> bool:
    candidates: list[IPAddress] = [address]
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        candidates.append(embedded[1])
    return any(
        candidate in network
        for candidate in candidates
        for network in policy.allowed_networks
        if network.version == candidate.version
    )


def _net(cidr: str) -> IPNetwork:
    return ipaddress.ip_network(cidr)


# Checked in order; the first match names the refusal. Python's is_global/is_private tables
# differ between patch releases, so every range the requirement names is listed here and
# `is_global` is only the final catch-all.
_IPV4_RULES: tuple[tuple[IPNetwork, Reason, str], ...] = (
    (_net("0.0.0.0/32"), Reason.UNSPECIFIED, "unspecified"),
    (_net("0.0.0.0/8"), Reason.UNSPECIFIED, 'in 0.0.0.0/8 ("this network")'),
    (_net("127.0.0.0/8"), Reason.LOOPBACK, "loopback"),
    (_net("10.0.0.0/8"), Reason.PRIVATE, "private"),
    (_net("172.16.0.0/12"), Reason.PRIVATE, "private"),
    (_net("192.168.0.0/16"), Reason.PRIVATE, "private"),
    (_net("169.254.169.254/32"), Reason.LINK_LOCAL, "link-local (the cloud metadata service)"),
    (_net("169.254.0.0/16"), Reason.LINK_LOCAL, "link-local"),
    (_net("100.64.0.0/10"), Reason.SHARED, "in the shared (carrier-grade NAT) range 100.64.0.0/10"),
    (_net("224.0.0.0/4"), Reason.MULTICAST, "multicast"),
    (_net("255.255.255.255/32"), Reason.RESERVED, "the broadcast address"),
    (_net("240.0.0.0/4"), Reason.RESERVED, "reserved (240.0.0.0/4)"),
    (_net("192.0.0.0/24"), Reason.RESERVED, "reserved for IETF protocols (192.0.0.0/24)"),
    (_net("192.0.2.0/24"), Reason.RESERVED, "reserved for documentation (192.0.2.0/24)"),
    (_net("198.51.100.0/24"), Reason.RESERVED, "reserved for documentation (198.51.100.0/24)"),
    (_net("203.0.113.0/24"), Reason.RESERVED, "reserved for documentation (203.0.113.0/24)"),
    (_net("198.18.0.0/15"), Reason.RESERVED, "reserved for benchmarking (198.18.0.0/15)"),
    (_net("192.88.99.0/24"), Reason.TUNNEL, "the deprecated 6to4 relay anycast (192.88.99.0/24)"),
)

_IPV6_RULES: tuple[tuple[IPNetwork, Reason, str], ...] = (
    (_net("::/128"), Reason.UNSPECIFIED, "unspecified"),
    (_net("::1/128"), Reason.LOOPBACK, "loopback"),
    (_net("::/96"), Reason.TUNNEL, "IPv4-compatible (deprecated)"),
    (_net("::ffff:0:0:0/96"), Reason.TUNNEL, "IPv4-translated (::ffff:0:0:0/96)"),
    (_net("64:ff9b:1::/48"), Reason.TUNNEL, "in the local-use NAT64 range 64:ff9b:1::/48"),
    (_net("ff00::/8"), Reason.MULTICAST, "multicast"),
    (_net("fe80::/10"), Reason.LINK_LOCAL, "link-local"),
    (_net("fec0::/10"), Reason.PRIVATE, "site-local (fec0::/10)"),
    (_net("fc00::/7"), Reason.PRIVATE, "unique local (fc00::/7), IPv6's private range"),
    (_net("2001::/32"), Reason.TUNNEL, "a Teredo tunnel address (2001::/32)"),
    (_net("2001:db8::/32"), Reason.RESERVED, "reserved for documentation (2001:db8::/32)"),
    (_net("3fff::/20"), Reason.RESERVED, "reserved for documentation (3fff::/20)"),
    (_net("2001::/23"), Reason.RESERVED, "reserved for IETF protocols (2001::/23)"),
)

_GLOBAL_UNICAST = _net("2000::/3")
_NAT64 = _net("64:ff9b::/96")


def _embedded_ipv4(address: IPAddress) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address stands for, with the form's name."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _classify(address: IPAddress) -> tuple[Reason, str] | None:
    """Why the address is not public, or None when it is."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        form, v4 = embedded
        inner = _classify(v4)
        if inner is None:
            return None
        reason, description = inner
        return reason, f"the {form} form of {v4}, which is {description}"
    rules = _IPV4_RULES if address.version == 4 else _IPV6_RULES
    for network, reason, description in rules:
        if address in network:
            return reason, description
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST:
        return Reason.RESERVED, "outside the global unicast range 2000::/3"
    if not address.is_global:
        return Reason.NOT_GLOBAL, "not a public address"
    return None
