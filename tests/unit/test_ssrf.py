"""SSRF checks on webhook URLs and resolved addresses, as tables of URLs and expected refusals.

Every internal spelling is tried twice: with https (refused for the address) and with http
under a policy that allows http (still refused for the address), and http is also shown to be
refused by default. Nothing here resolves or connects: the conftest guard fails any test that
tries.
"""

from __future__ import annotations

import ipaddress

import pytest

from services.common.ssrf import (
    ParsedTarget,
    Reason,
    UrlPolicy,
    UrlRefused,
    check_address,
    check_url,
    filter_resolved,
)

STRICT = UrlPolicy()
HTTP_OK = UrlPolicy(allow_http=True)

# URL without scheme -> (reason, the normalised address or host the message must name).
INTERNAL = [
    ("127.0.0.1", Reason.LOOPBACK, "127.0.0.1"),
    ("2130706433", Reason.LOOPBACK, "127.0.0.1"),
    ("0x7f000001", Reason.LOOPBACK, "127.0.0.1"),
    ("0x7f.0.0.1", Reason.LOOPBACK, "127.0.0.1"),
    ("0177.0.0.1", Reason.LOOPBACK, "127.0.0.1"),
    ("017700000001", Reason.LOOPBACK, "127.0.0.1"),
    ("127.1", Reason.LOOPBACK, "127.0.0.1"),
    ("127.0.1", Reason.LOOPBACK, "127.0.0.1"),
    ("127.0.0.1.", Reason.LOOPBACK, "127.0.0.1"),
    ("0X7F.1", Reason.LOOPBACK, "127.0.0.1"),
    ("１２７。０。０。１", Reason.LOOPBACK, "127.0.0.1"),
    ("[::1]", Reason.LOOPBACK, "::1"),
    ("[::ffff:127.0.0.1]", Reason.LOOPBACK, "127.0.0.1"),
    ("[::ffff:7f00:1]", Reason.LOOPBACK, "127.0.0.1"),
    ("[::ffff:10.0.0.1]", Reason.PRIVATE, "10.0.0.1"),
    ("169.254.169.254/latest/meta-data", Reason.LINK_LOCAL, "169.254.169.254"),
    ("2852039166/latest/meta-data", Reason.LINK_LOCAL, "169.254.169.254"),
    ("[fe80::1%25eth0]", Reason.ZONE_ID, "fe80::1%25eth0"),
    ("[fe80::1]", Reason.LINK_LOCAL, "fe80::1"),
    ("10.0.0.1", Reason.PRIVATE, "10.0.0.1"),
    ("172.16.5.4", Reason.PRIVATE, "172.16.5.4"),
    ("192.168.1.1", Reason.PRIVATE, "192.168.1.1"),
    ("100.64.0.1", Reason.SHARED, "100.64.0.1"),
    ("0.0.0.0", Reason.UNSPECIFIED, "0.0.0.0"),
    ("0", Reason.UNSPECIFIED, "0.0.0.0"),
    ("0.1.2.3", Reason.UNSPECIFIED, "0.1.2.3"),
    ("224.0.0.1", Reason.MULTICAST, "224.0.0.1"),
    ("255.255.255.255", Reason.RESERVED, "255.255.255.255"),
    ("198.18.0.1", Reason.RESERVED, "198.18.0.1"),
    ("192.0.0.8", Reason.RESERVED, "192.0.0.8"),
    ("192.0.2.1", Reason.RESERVED, "192.0.2.1"),
    ("[fc00::1]", Reason.PRIVATE, "fc00::1"),
    ("[fd12:3456::1]", Reason.PRIVATE, "fd12:3456::1"),
    ("[ff02::1]", Reason.MULTICAST, "ff02::1"),
    ("[::]", Reason.UNSPECIFIED, "::"),
    ("[2002:7f00:1::]", Reason.LOOPBACK, "127.0.0.1"),
    ("[2002:a9fe:a9fe::]", Reason.LINK_LOCAL, "169.254.169.254"),
    ("[64:ff9b::7f00:1]", Reason.LOOPBACK, "127.0.0.1"),
    ("[64:ff9b::10.1.2.3]", Reason.PRIVATE, "10.1.2.3"),
    ("[::127.0.0.1]", Reason.TUNNEL, "::7f00:1"),
    ("[2001:0:4136:e378:8000:63bf:3fff:fdd2]", Reason.TUNNEL, "2001:0:4136"),
    ("[2001:db8::1]", Reason.RESERVED, "2001:db8::1"),
    ("localhost", Reason.LOCAL_NAME, "localhost"),
    ("LOCALHOST.", Reason.LOCAL_NAME, "localhost"),
    ("foo.localhost", Reason.LOCAL_NAME, "foo.localhost"),
    ("metadata.google.internal", Reason.LOCAL_NAME, "metadata.google.internal"),
    ("printer.local", Reason.LOCAL_NAME, "printer.local"),
    ("db.localdomain", Reason.LOCAL_NAME, "db.localdomain"),
    ("jenkins", Reason.LOCAL_NAME, "jenkins"),
]

PUBLIC = [
    ("https://example.com/hook", "example.com", 443, None),
    ("https://Example.COM./hook", "example.com", 443, None),
    ("https://93.184.216.34/x", "93.184.216.34", 443, "93.184.216.34"),
    ("https://0x5db8d822/x", "93.184.216.34", 443, "93.184.216.34"),
    (
        "https://[2606:2800:220:1:248:1893:25c8:1946]/",
        "2606:2800:220:1:248:1893:25c8:1946",
        443,
        "2606:2800:220:1:248:1893:25c8:1946",
    ),
    ("https://[::ffff:93.184.216.34]/", "::ffff:5db8:d822", 443, "::ffff:5db8:d822"),
    ("https://[2002:5db8:d822::]/", "2002:5db8:d822::", 443, "2002:5db8:d822::"),
    ("https://bücher.de:8443/h", "xn--bcher-kva.de", 8443, None),
    ("https://hooks.example.com:443/a?b=c", "hooks.example.com", 443, None),
]


@pytest.mark.parametrize(("target", "reason", "named"), INTERNAL)
def test_internal_targets_are_refused_over_https(target: str, reason: Reason, named: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        check_url(f"https://{target}", STRICT)
    assert refused.value.reason == reason
    assert named in str(refused.value)


@pytest.mark.parametrize(("target", "reason", "named"), INTERNAL)
def test_internal_targets_are_refused_over_http_even_when_http_is_allowed(
    target: str, reason: Reason, named: str
) -> None:
    with pytest.raises(UrlRefused) as refused:
        check_url(f"http://{target}", HTTP_OK)
    assert refused.value.reason == reason


@pytest.mark.parametrize("target", [target for target, _, _ in INTERNAL])
def test_http_is_refused_by_default(target: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        check_url(f"http://{target}", STRICT)
    assert refused.value.reason == Reason.SCHEME
    assert str(refused.value) == "scheme http is not allowed: use https"


@pytest.mark.parametrize(("url", "host", "port", "ip"), PUBLIC)
def test_public_targets_are_accepted_and_normalised(
    url: str, host: str, port: int, ip: str | None
) -> None:
    target = check_url(url, STRICT)
    assert target.scheme == "https"
    assert target.host == host
    assert target.port == port
    assert target.ip == (None if ip is None else ipaddress.ip_address(ip))
    assert check_url(target.url, STRICT) == target


def test_the_rebuilt_url_names_the_checked_host() -> None:
    target = check_url("https://0x5db8d822:8443/path?q=1", STRICT)
    assert target.url == "https://93.184.216.34:8443/path?q=1"
    assert check_url("https://[::FFFF:5db8:D822]/", STRICT).url == "https://[::ffff:5db8:d822]/"


def test_the_refusal_message_says_what_is_wrong() -> None:
    with pytest.raises(UrlRefused, match=r"^address 10\.0\.0\.1 is private$"):
        check_url("https://10.0.0.1/hook", STRICT)
    with pytest.raises(UrlRefused, match=r"IPv4-mapped form of 127\.0\.0\.1, which is loopback"):
        check_url("https://[::ffff:7f00:1]/", STRICT)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook\r\nX-Injected: 1",
        "https://example.com/hook\n",
        "https://example.com/\x00",
        "\rhttps://example.com/",
        "https://exa\nmple.com/",
        "https://example.com%0d%0aX:1/",
        "https://example.com%0A/",
        "https://example.com%00.evil.com/",
    ],
)
def test_cr_lf_and_nul_are_refused(url: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        check_url(url, STRICT)
    assert refused.value.reason == Reason.CONTROL_CHARACTER
    assert str(refused.value) == "URL contains a control character (CR, LF or NUL)"


@pytest.mark.parametrize("url", ["https://example.com/\ta", "https://example.com/\x1b", "\x7f"])
def test_other_control_characters_are_refused(url: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        check_url(url, STRICT)
    assert refused.value.reason == Reason.CONTROL_CHARACTER


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pass@example.com/",
        "https://user@example.com/",
        "https://:@example.com/",
        "https://example.com@127.0.0.1/",
        "https://evil.com\\@127.0.0.1/",
    ],
)
def test_userinfo_is_refused(url: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        check_url(url, STRICT)
    assert refused.value.reason == Reason.USERINFO


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", Reason.SCHEME),
        ("file:///etc/passwd", Reason.SCHEME),
        ("gopher://127.0.0.1:6379/_", Reason.SCHEME),
        ("example.com/hook", Reason.SCHEME),
        ("https:///hook", Reason.MALFORMED),
        ("https:example.com", Reason.MALFORMED),
        ("https://example.com:0/", Reason.PORT),
        ("https://example.com:65536/", Reason.PORT),
        ("https://example.com:+443/", Reason.PORT),
        ("https://example.com:4_43/", Reason.PORT),
        ("https://example.com:/", Reason.PORT),
        ("https://[::1/", Reason.MALFORMED),
        ("https://[127.0.0.1]/", Reason.MALFORMED),
        ("https://::1/", Reason.MALFORMED),
        ("https://256.0.0.1/", Reason.MALFORMED),
        ("https://1.2.3.4.5/", Reason.MALFORMED),
        ("https://08.0.0.1/", Reason.MALFORMED),
        ("https://example.123/", Reason.MALFORMED),
        ("https://a..b.com/", Reason.MALFORMED),
        ("https://%31%32%37.0.0.1/", Reason.MALFORMED),
        ("https://exa mple.com/", Reason.MALFORMED),
        ("https://ex_ample.com!/", Reason.MALFORMED),
        ("https://faß.de/", Reason.MALFORMED),
        ("https://evil.com\uff0f@127.0.0.1/", Reason.MALFORMED),
    ],
)
def test_malformed_urls_are_refused(url: str, reason: Reason) -> None:
    with pytest.raises(UrlRefused) as refused:
        check_url(url, STRICT)
    assert refused.value.reason == reason


def test_allow_list_lets_a_local_sink_through() -> None:
    policy = UrlPolicy.from_strings(allow_http=True, allow=["127.0.0.0/8"])
    target = check_url("http://127.0.0.1:8080/hook", policy)
    assert target == ParsedTarget(
        scheme="http",
        host="127.0.0.1",
        port=8080,
        ip=ipaddress.IPv4Address("127.0.0.1"),
        url="http://127.0.0.1:8080/hook",
    )
    assert check_url("http://0x7f.1:8080/hook", policy).host == "127.0.0.1"
    check_address("::ffff:127.0.0.1", policy)
    with pytest.raises(UrlRefused):
        check_url("http://10.0.0.1/hook", policy)
    with pytest.raises(UrlRefused):
        check_url("http://[::1]/hook", policy)


def test_allow_list_host_names_skip_the_name_and_address_checks() -> None:
    policy = UrlPolicy.from_strings(allow_http=True, allow=["LocalHost.", " webhook-sink ", ""])
    assert policy.allowed_hosts == frozenset({"localhost", "webhook-sink"})
    assert check_url("http://localhost:9000/h", policy).host == "localhost"
    assert check_url("http://webhook-sink/h", policy).host == "webhook-sink"
    assert filter_resolved("localhost", ["127.0.0.1", "::1"], policy) == ["127.0.0.1", "::1"]
    with pytest.raises(UrlRefused):
        check_url("http://other.localhost/h", policy)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("10.0.0.0/8", ipaddress.ip_network("10.0.0.0/8")),
        ("::1", ipaddress.ip_network("::1/128")),
        ("[fd00::]", ipaddress.ip_network("fd00::/128")),
        ("127.0.0.1", ipaddress.ip_network("127.0.0.1/32")),
    ],
)
def test_from_strings_parses_networks_and_addresses(
    entry: str, expected: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> None:
    policy = UrlPolicy.from_strings(allow_http=False, allow=[entry])
    assert policy.allowed_networks == (expected,)
    assert policy.allowed_hosts == frozenset()
    assert policy.allow_http is False


@pytest.mark.parametrize("entry", ["10.0.0.1/8", "300.1.1.1", "bad host", "a..b"])
def test_from_strings_refuses_bad_entries(entry: str) -> None:
    with pytest.raises(ValueError, match="allow-list entry"):
        UrlPolicy.from_strings(allow_http=False, allow=[entry])


def test_allowed_ports_restrict_the_port() -> None:
    policy = UrlPolicy(allowed_ports=frozenset({443}))
    assert check_url("https://example.com/", policy).port == 443
    with pytest.raises(UrlRefused, match="port 22 is not allowed") as refused:
        check_url("https://example.com:22/", policy)
    assert refused.value.reason == Reason.PORT


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", Reason.LOOPBACK),
        ("10.0.0.1", Reason.PRIVATE),
        ("169.254.169.254", Reason.LINK_LOCAL),
        ("100.127.255.255", Reason.SHARED),
        ("0.0.0.0", Reason.UNSPECIFIED),
        ("192.0.0.1", Reason.RESERVED),
        ("198.19.255.255", Reason.RESERVED),
        ("203.0.113.7", Reason.RESERVED),
        ("240.0.0.1", Reason.RESERVED),
        ("192.88.99.1", Reason.TUNNEL),
        ("::1", Reason.LOOPBACK),
        ("::ffff:169.254.169.254", Reason.LINK_LOCAL),
        ("::ffff:0:a00:1", Reason.TUNNEL),
        ("fe80::1%eth0", Reason.LINK_LOCAL),
        ("fec0::1", Reason.PRIVATE),
        ("fd00::1", Reason.PRIVATE),
        ("ff05::2", Reason.MULTICAST),
        ("2002:c0a8:101::1", Reason.PRIVATE),
        ("64:ff9b::a9fe:a9fe", Reason.LINK_LOCAL),
        ("64:ff9b:1::1", Reason.TUNNEL),
        ("2001::1", Reason.TUNNEL),
        ("3fff::1", Reason.RESERVED),
        ("4000::1", Reason.RESERVED),
        ("not-an-ip", Reason.MALFORMED),
        ("0x7f000001", Reason.MALFORMED),
    ],
)
def test_resolved_internal_addresses_are_refused(address: str, reason: Reason) -> None:
    with pytest.raises(UrlRefused) as refused:
        check_address(address, STRICT)
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        ipaddress.IPv4Address("1.1.1.1"),
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ],
)
def test_resolved_public_addresses_are_accepted(
    address: str | ipaddress.IPv4Address,
) -> None:
    check_address(address, STRICT)


def test_a_zone_id_on_a_public_address_is_refused() -> None:
    with pytest.raises(UrlRefused) as refused:
        check_address("2606:4700:4700::1111%eth0", STRICT)
    assert refused.value.reason == Reason.ZONE_ID


def test_filter_resolved_keeps_only_public_answers() -> None:
    answers = ["10.0.0.5", "93.184.216.34", "169.254.169.254", "::1", "2606:4700:4700::1111"]
    assert filter_resolved("rebind.example.com", answers, STRICT) == [
        "93.184.216.34",
        "2606:4700:4700::1111",
    ]


def test_filter_resolved_refuses_a_name_with_only_internal_answers() -> None:
    with pytest.raises(UrlRefused) as refused:
        filter_resolved("rebind.example.com", ["127.0.0.1", "10.0.0.1", "fd00::1"], STRICT)
    assert refused.value.reason == Reason.NO_ALLOWED_ADDRESS
    message = str(refused.value)
    assert message.startswith("host rebind.example.com resolves to no allowed address")
    assert "address 10.0.0.1 is private" in message


def test_filter_resolved_refuses_an_empty_answer() -> None:
    with pytest.raises(UrlRefused) as refused:
        filter_resolved("example.com", [], STRICT)
    assert refused.value.reason == Reason.NO_ALLOWED_ADDRESS


def test_filter_resolved_honours_allowed_networks() -> None:
    policy = UrlPolicy.from_strings(allow_http=True, allow=["10.1.0.0/16"])
    assert filter_resolved("sink.test", ["10.1.2.3", "10.2.0.1"], policy) == ["10.1.2.3"]


def test_url_refused_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="use https"):
        check_url("http://example.com/", STRICT)
