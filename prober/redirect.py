"""The redirect policy: how many redirects a probe follows, to which schemes, and to which addresses.

A probe follows at most `MAX_REDIRECTS` redirects, only to http:// and https://. A target reached
at a public address must not lead the prober into its own network: a redirect from a public
address to a loopback, private, link-local or otherwise internal one is refused (down/redirect),
unless the check says `follow_redirects: any`. The reference is the address the first request
was actually sent to, so a target that is itself internal (a loopback test server, an intranet
page) may redirect internally, and a public name with one private record among its addresses
does not thereby become internal.

Addresses are judged when a connection is about to be made, on the very addresses it will be made
to: however a redirect spells its host (IDNA or punycode, a trailing dot or two, an IP address in
octal), what counts is where the connection goes. An address a redirect may not reach is never
connected to; when none is left, the redirect is refused. Through a proxy that resolves names
itself, only addresses written in a redirect's URL can be judged.

Everything here is pure; `prober.vantage` applies it where the addresses become known.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    host: str | None = None  # the host of the current hop, as in its URL (for messages)
    hops: int = 0  # redirects followed so far
    reference: str | None = None  # the class of the address the first request went to

    def admit(self, addresses: Sequence[str]) -> list[str]:
        """Of the addresses a connection for the current hop would try, those the policy allows.

        Raises RedirectRefusedError when none is left. Names (a proxy resolves them) pass.
        """
        if self.hops == 0 or self.follow == "any":
            return list(addresses)
        reference = self.reference or PUBLIC
        kept: list[str] = []
        refused = ""
        for address in addresses:
            kind = self.classify(address)
            if kind == "invalid" or may_follow(reference, kind):
                kept.append(address)
            else:
                refused = refused or kind
        if not kept:
            raise self._refusal(refused or "invalid", self.host or "", addresses[0] if addresses else "")
        return kept

    def connected(self, address: str) -> None:
        """A connection for the current hop reached `address`; the first hop's is the reference."""
        if self.hops == 0 and self.reference is None:
            kind = self.classify(address)
            if kind != "invalid":  # a name: a proxy connected to it, not this machine
                self.reference = PUBLIC if kind == PUBLIC else "internal"

    def redirected(self, from_host: str, to_host: str | None, to_is_address: bool) -> None:
        """A redirect from `from_host` to `to_host` (None: the same host) is about to be followed."""
        if self.hops == 0 and self.reference is None:
            # No connection of this machine's reached the target (a proxy did): its URL's address
            # if it has one, else the strictest assumption, public.
            kind = self.classify(from_host.strip("[]"))
            self.reference = PUBLIC if kind in (PUBLIC, "invalid") else "internal"
        self.hops += 1
        self.host = to_host or from_host
        if to_is_address and self.follow != "any":
            address = self.host.strip("[]")
            kind = self.classify(address)
            if not may_follow(self.reference or PUBLIC, kind):
                raise self._refusal(kind, self.host, address)

    @staticmethod
    def _refusal(kind: str, host: str, address: str) -> RedirectRefusedError:
        shown = host.strip("[]")
        if address and address != shown:
            shown = f"{shown}, {address}"
        return RedirectRefusedError(
            f"redirect from a public address to a {kind} address ({shown}) refused "
            "(follow_redirects: any allows it)"
        )
