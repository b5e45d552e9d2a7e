"""``no_proxy`` and ``NO_PROXY`` matching, as Go's ``golang.org/x/net/http/httpproxy`` does it.

Comma-separated entries: ``*`` (everything), IPs and CIDRs, and host names, each with an
optional port; a host matches itself and its subdomains, ``.domain`` and ``*.domain`` only its
subdomains; non-ASCII names compare in their ASCII form; unreadable entries are skipped.
``localhost`` and loopback addresses always go direct. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import SplitResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def bypasses_proxy(target: SplitResult, no_proxy: str) -> bool:
    """Whether httpproxy sends ``target`` direct: localhost, loopback, or a ``no_proxy`` match."""
    host = _ascii_host(target.hostname or "")
    port = str(target.port) if target.port is not None else _DEFAULT_PORTS.get(target.scheme, "")
    if host == "localhost":
        return True
    ip = _ip_address(host)
    if ip is not None and ip.is_loopback:
        return True
    return any(matcher.matches(host, port, ip) for matcher in parse_no_proxy(no_proxy))


@dataclass(frozen=True, slots=True)
class _Everything:
    def matches(self, host: str, port: str, ip: IPAddress | None) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class _Network:
    network: IPNetwork

    def matches(self, host: str, port: str, ip: IPAddress | None) -> bool:
        return ip is not None and ip in self.network


@dataclass(frozen=True, slots=True)
class _Address:
    ip: IPAddress
    port: str

    def matches(self, host: str, port: str, ip: IPAddress | None) -> bool:
        return ip == self.ip and self.port in ("", port)


@dataclass(frozen=True, slots=True)
class _Domain:
    suffix: str  # with its leading dot
    port: str
    match_host: bool  # written without a leading dot: the name itself matches too

    def matches(self, host: str, port: str, ip: IPAddress | None) -> bool:
        if ip is not None:
            return False
        named = host.endswith(self.suffix) or (self.match_host and host == self.suffix[1:])
        return named and self.port in ("", port)


Matcher = _Everything | _Network | _Address | _Domain


def parse_no_proxy(no_proxy: str) -> tuple[Matcher, ...]:
    """Comma-separated entries; as httpproxy, an entry it cannot read is skipped, not refused."""
    matchers: list[Matcher] = []
    for entry in (item.strip().lower() for item in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return (_Everything(),)
        matcher = _entry_matcher(entry)
        if matcher is not None:
            matchers.append(matcher)
    return tuple(matchers)


def _entry_matcher(entry: str) -> Matcher | None:
    network = _cidr(entry)
    if network is not None:
        return _Network(network)
    split = _split_host_port(entry)
    if split is None:
        host, port = entry, ""
    else:
        host, port = split
        if not host:
            return None
    ip = _ip_address(host)
    if ip is not None:
        return _Address(ip, port)
    if host.startswith("*."):
        host = host[1:]
    match_host = not host.startswith(".")
    return _Domain(_ascii_host("." + host if match_host else host), port, match_host)


def _cidr(entry: str) -> IPNetwork | None:
    address, slash, bits = entry.partition("/")
    if not slash or not bits.isdigit():
        return None
    try:
        return ipaddress.ip_network(f"{address}/{bits}", strict=False)
    except ValueError:
        return None


def _split_host_port(text: str) -> tuple[str, str] | None:
    """Go's net.SplitHostPort: ``host:port`` or ``[v6]:port``; None when it is not that form."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or not text[end + 1 :].startswith(":"):
            return None
        host, port = text[1:end], text[end + 2 :]
    else:
        colon = text.rfind(":")
        if colon < 0 or ":" in text[:colon]:
            return None
        host, port = text[:colon], text[colon + 1 :]
    if any(bracket in host or bracket in port for bracket in "[]"):
        return None
    return host, port


def _ip_address(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    # Go compares an IPv4-mapped IPv6 address as the IPv4 address it carries.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _ascii_host(host: str) -> str:
    """An internationalised name in its ASCII (punycode) form, as httpproxy compares them."""
    if host.isascii():
        return host
    try:
        return ".".join(_ascii_labels(host))
    except UnicodeError:
        return host


def _ascii_labels(host: str) -> Iterator[str]:
    for label in host.split("."):
        yield label.encode("idna").decode("ascii") if label else label
