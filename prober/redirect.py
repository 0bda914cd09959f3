"""The redirect policy: how many redirects a probe follows, to which schemes, and to which addresses.

A probe follows at most `MAX_REDIRECTS` redirects, only to http:// and https://. A target reached
at a public address must not lead the prober into its own network: a redirect from a public
address to a loopback, private, link-local or otherwise internal one is refused (down/redirect),
unless the check says `follow_redirects: any`. The check's first address is the reference, so a
target that is itself internal (a loopback test server, an intranet page) may redirect internally.

Everything here is pure; `prober.vantage` applies it where the addresses become known: when the
vantage's resolver answers for a redirect's host, and when a redirect names an IP address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from prober.model import ProberError

MAX_REDIRECTS = 10
PUBLIC = "public"

FollowRedirects = bool | Literal["any"]
AddressClassifier = Callable[[str], str]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RedirectRefusedError(ProberError):
    """A redirect the policy does not follow; the probe records it as down/redirect."""


def address_class(address: str) -> str:
    """ "public", or the kind of internal address: loopback, private, link-local, shared, reserved..."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # fe80::1%eth0
    except ValueError:
        return "invalid"
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv4 addresses written as IPv6 reach the IPv4 address they embed.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
    for kind, holds in (
        ("unspecified", ip.is_unspecified),  # 0.0.0.0 and :: connect to this machine
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),  # 169.254.169.254: cloud metadata services
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
    ):
        if holds:
            return kind
    return PUBLIC if ip.is_global else "reserved"  # 100.64.0.0/10 and the like: not on the internet


def may_follow(reference: str, hop: str) -> bool:
    """Whether a redirect from a target whose address is of class `reference` may go to class `hop`."""
    return reference != PUBLIC or hop == PUBLIC


@dataclass(slots=True)
class RedirectGuard:
    """One probe's redirects: the reference address class and the host of the hop being made."""

    follow: FollowRedirects
    classify: AddressClassifier = address_class
    host: str | None = None  # the host of the current hop, as in its URL
    hops: int = 0  # redirects followed so far
    first_addresses: list[str] = field(default_factory=list)  # what the first host resolved to
    reference: str | None = None

    def resolved(self, host: str, addresses: Iterable[str]) -> None:
        """The vantage's resolver answered for `host`; refuse a redirect to an internal address."""
        if host != self.host:  # a proxy's name, not the target's
            return
        if self.hops == 0:
            self.first_addresses = list(addresses)
        elif self.follow != "any":
            for address in addresses:
                self._judge(host, address)

    def redirected(self, from_host: str, to_host: str | None, to_is_address: bool) -> None:
        """A redirect from `from_host` to `to_host` (None: the same host) is about to be followed."""
        if self.hops == 0:
            self.reference = self._reference(from_host)
        self.hops += 1
        self.host = to_host or from_host
        if to_is_address and self.follow != "any":
            self._judge(self.host, self.host)

    def _reference(self, host: str) -> str:
        classes = [self.classify(a) for a in self.first_addresses or [host]]
        if all(c == "invalid" for c in classes):
            # A name this vantage did not resolve (a proxy did): assume the strictest, public.
            return PUBLIC
        return PUBLIC if all(c == PUBLIC for c in classes) else "internal"

    def _judge(self, host: str, address: str) -> None:
        kind = self.classify(address)
        if not may_follow(self.reference or PUBLIC, kind):
            shown = host.strip("[]") if host.strip("[]") == address else host
            raise RedirectRefusedError(
                f"redirect from a public address to a {kind} address ({shown}) refused "
                "(follow_redirects: any allows it)"
            )
