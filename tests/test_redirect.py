"""The redirect policy: how many, which schemes, and never from a public address into an internal one.

Tests only have loopback, so the address class of the end-to-end tests' targets is chosen by the
classifier a vantage pool is given: `lab_classes` calls 127.0.0.2 "public" and every other address
what it really is. Everything else is real: a dnslib resolver answers for the names, the redirect
comes from an aiohttp server, and the internal server counts the requests that reach it. The
classifier itself is tested on real addresses with a table.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from conftest import HEALTHY_PAGE, ZoneResolver, start_app, start_dns

from prober.config import Config, parse_config
from prober.model import ProbeResult, Reason, Verdict
from prober.probe import probe_everywhere
from prober.redirect import address_class, may_follow
from prober.vantage import VantagePool

LAB_PUBLIC = "127.0.0.2"  # plays a public address in these tests


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", "public"),
        ("2606:4700::1111", "public"),
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1%eth0", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "reserved"),  # carrier-grade NAT: not on the internet
        ("224.0.0.1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:8.8.8.8", "public"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 around 10.0.0.1
        ("not-an-address", "invalid"),
    ],
    ids=lambda v: str(v),
)
def test_address_class(address: str, kind: str) -> None:
    assert address_class(address) == kind


@pytest.mark.parametrize(
    ("reference", "hop", "allowed"),
    [
        ("public", "public", True),
        ("public", "loopback", False),
        ("public", "private", False),
        ("public", "link-local", False),
        ("internal", "loopback", True),  # a loopback or intranet target may redirect internally
        ("internal", "public", True),
    ],
)
def test_may_follow(reference: str, hop: str, allowed: bool) -> None:
    assert may_follow(reference, hop) is allowed


def lab_classes(address: str) -> str:
    """The real classes, except that 127.0.0.2 is public."""
    return "public" if address == LAB_PUBLIC else address_class(address)


async def probe(cfg: Config, classify=lab_classes) -> ProbeResult:  # type: ignore[no-untyped-def]
    check = cfg.checks[0]
    pool = VantagePool(classify=classify)
    await pool.sync(cfg.vantages)
    try:
        (result,) = await probe_everywhere(pool, check, cfg.signatures_for(check))
    finally:
        await pool.close()
    return result


def config(text: str) -> Config:
    return parse_config(textwrap.dedent(text), env={})


class Lab:
    """A "public" server on 127.0.0.2 whose /to?url=U redirects to U, an internal one on 127.0.0.1."""

    def __init__(self) -> None:
        self.internal_hits = 0
        self.port = 0

    async def start(self) -> list[web.AppRunner]:
        async def to(request: web.Request) -> web.Response:
            raise web.HTTPFound(request.query["url"])

        async def chain(request: web.Request) -> web.Response:
            n = int(request.match_info["n"])
            raise web.HTTPFound(f"/chain/{n - 1}" if n > 1 else "/ok")

        async def ok(request: web.Request) -> web.Response:
            return web.Response(text=HEALTHY_PAGE, content_type="text/html")

        async def secret(request: web.Request) -> web.Response:
            self.internal_hits += 1
            return web.Response(text=HEALTHY_PAGE.replace("Welcome home", "internal admin"))

        public = web.Application()
        public.add_routes([web.get("/to", to), web.get("/chain/{n}", chain), web.get("/ok", ok)])
        public_runner, self.port = await start_app(public, host=LAB_PUBLIC)
        internal = web.Application()
        internal.add_routes([web.get("/to", to), web.get("/{tail:.*}", secret)])
        internal_runner = web.AppRunner(internal, access_log=None)
        await internal_runner.setup()
        await web.TCPSite(internal_runner, "127.0.0.1", self.port).start()  # same port, other address
        return [public_runner, internal_runner]


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    lab = Lab()
    runners = await lab.start()
    yield lab
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def zone() -> Iterator[tuple[str, ZoneResolver]]:
    """A DNS server: public.test is the "public" address, internal.test loopback."""
    server, dns = start_dns({"public.test": LAB_PUBLIC, "internal.test": "127.0.0.1"})
    yield dns.address, dns.resolver
    server.stop()
    server.server.server_close()


@pytest.mark.parametrize(
    "location",
    ["file:///etc/passwd", "ftp://127.0.0.1/pub/", "data:text/html,<h1>fine</h1>", "gopher://127.0.0.1/"],
    ids=["file", "ftp", "data", "gopher"],
)
async def test_redirect_to_a_scheme_that_is_not_http_is_down(lab: Lab, location: str) -> None:
    # Today: unknown/internal, so `once` exits 0 and a target can hide an outage that way.
    result = await probe(
        config(f"checks: [{{name: r, url: 'http://{LAB_PUBLIC}:{lab.port}/to?url={location}'}}]")
    )
    assert (result.verdict, result.reason) == (Verdict.DOWN, Reason.REDIRECT), result
    assert "only http and https" in (result.error or "")


@pytest.mark.parametrize(("hops", "verdict"), [(9, Verdict.UP), (10, Verdict.UP), (11, Verdict.DOWN)])
async def test_exactly_ten_redirects_are_followed(lab: Lab, hops: int, verdict: Verdict) -> None:
    result = await probe(config(f"checks: [{{name: r, url: 'http://{LAB_PUBLIC}:{lab.port}/chain/{hops}'}}]"))
    assert result.verdict == verdict, result
    if verdict == Verdict.DOWN:
        assert result.reason == Reason.REDIRECT and "more than 10 redirects" in (result.error or "")


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{port}/admin",
        "http://internal.test:{port}/admin",
        "http://[::ffff:127.0.0.1]:{port}/",
    ],
    ids=["address", "name", "mapped-address"],
)
async def test_public_target_may_not_redirect_into_the_internal_network(
    lab: Lab, zone: tuple[str, ZoneResolver], location: str
) -> None:
    where = location.format(port=lab.port)
    cfg = config(f"""
        vantages:
          lab: {{resolver: ["{zone[0]}"]}}
        checks:
          - {{name: r, url: "http://public.test:{lab.port}/to?url={where}"}}
        """)
    result = await probe(cfg)
    assert (result.verdict, result.reason) == (Verdict.DOWN, Reason.REDIRECT), result
    assert "public address to a loopback address" in (result.error or "")
    assert "follow_redirects: any" in (result.error or "")
    assert lab.internal_hits == 0  # refused before connecting: the internal service saw nothing


async def test_follow_redirects_any_allows_it(lab: Lab, zone: tuple[str, ZoneResolver]) -> None:
    cfg = config(f"""
        vantages:
          lab: {{resolver: ["{zone[0]}"]}}
        checks:
          - name: r
            url: "http://public.test:{lab.port}/to?url=http://internal.test:{lab.port}/admin"
            follow_redirects: any
        """)
    result = await probe(cfg)
    assert (result.verdict, result.reason) == (Verdict.UP, None), result
    assert lab.internal_hits == 1


async def test_a_name_that_rebinds_to_an_internal_address_is_refused(
    lab: Lab, zone: tuple[str, ZoneResolver]
) -> None:
    # The redirect goes to the same name, which now resolves to loopback: judged on the address the
    # connection would use, not on the name.
    address, resolver = zone

    class Rebinding(ZoneResolver):
        def resolve(self, request, handler):  # type: ignore[no-untyped-def]
            from dnslib import QTYPE

            reply = super().resolve(request, handler)
            for rr in reply.rr:
                rr.ttl = 0  # as rebinding attackers answer: nobody may cache it (c-ares would)
            if request.q.qtype == QTYPE.A and reply.rr:
                self.records["public.test"] = "127.0.0.1"  # after the first address given
            return reply

    resolver.__class__ = Rebinding
    cfg = config(f"""
        vantages:
          lab: {{resolver: ["{address}"]}}
        checks:
          - {{name: r, url: "http://public.test:{lab.port}/to?url=/admin"}}
        """)
    result = await probe(cfg)
    assert (result.verdict, result.reason) == (Verdict.DOWN, Reason.REDIRECT), result
    assert lab.internal_hits == 0


async def test_an_internal_target_may_redirect_internally(lab: Lab) -> None:
    # The reference is the check's own address: a loopback target redirecting to loopback is fine.
    result = await probe(config(f"checks: [{{name: r, url: 'http://127.0.0.1:{lab.port}/to?url=/admin'}}]"))
    assert (result.verdict, result.reason) == (Verdict.UP, None), result
    assert lab.internal_hits == 1


async def test_public_to_public_is_followed(lab: Lab, zone: tuple[str, ZoneResolver]) -> None:
    cfg = config(f"""
        vantages:
          lab: {{resolver: ["{zone[0]}"]}}
        checks:
          - {{name: r, url: "http://public.test:{lab.port}/to?url=http://{LAB_PUBLIC}:{lab.port}/ok"}}
        """)
    result = await probe(cfg)
    assert (result.verdict, result.reason) == (Verdict.UP, None), result


async def test_authorization_is_not_sent_to_another_origin(lab: Lab) -> None:
    # aiohttp drops credentials on a cross-origin redirect; the policy must not undo that.
    seen: list[str | None] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(text=HEALTHY_PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", record)
    runner, port = await start_app(app, host="127.0.0.3")
    try:
        cfg = config(f"""
            checks:
              - name: r
                url: "http://127.0.0.1:{lab.port}/to?url=http://127.0.0.3:{port}/"
                headers: {{Authorization: "Bearer s3cr3t"}}
            """)
        result = await probe(cfg)
    finally:
        await runner.cleanup()
    assert result.verdict == Verdict.UP, result
    assert seen == [None]


@pytest.mark.parametrize(
    "host",
    ["rebind-\u00fc.test", "xn--rebind--t2a.test", "rebind.test.", "rebind.test..", "REBIND.test"],
    ids=["idn", "punycode", "trailing-dot", "two-trailing-dots", "upper-case"],
)
async def test_every_spelling_of_an_internal_name_is_refused(
    lab: Lab, zone: tuple[str, ZoneResolver], host: str
) -> None:
    # Before: the guard compared yarl's decoded host with the name aiohttp resolved (punycode,
    # one trailing dot less) and, when they differed, took it for a proxy's name and let it through.
    address, resolver = zone
    resolver.records.update({"rebind.test": "127.0.0.1", "xn--rebind--t2a.test": "127.0.0.1"})
    cfg = config(f"""
        vantages:
          lab: {{resolver: ["{address}"]}}
        checks:
          - {{name: r, url: "http://public.test:{lab.port}/to?url=http://{host}:{lab.port}/admin"}}
        """)
    result = await probe(cfg)
    assert (result.verdict, result.reason) == (Verdict.DOWN, Reason.REDIRECT), result
    assert "127.0.0.1" in (result.error or "")
    assert lab.internal_hits == 0


def two_addresses(resolver: ZoneResolver, name: str, first: str, second: str) -> None:
    """Make `resolver` answer `name` with two A records, in that order."""

    class TwoAddresses(ZoneResolver):
        def resolve(self, request, handler):  # type: ignore[no-untyped-def]
            from dnslib import QTYPE, RR, A

            reply = super().resolve(request, handler)
            if str(request.q.qname).rstrip(".") == name and request.q.qtype == QTYPE.A:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(second), ttl=5))
            return reply

    resolver.__class__ = TwoAddresses
    resolver.records[name] = first


async def test_the_reference_is_the_address_connected_to(lab: Lab, zone: tuple[str, ZoneResolver]) -> None:
    # mixed.test has a public and an internal address; the probe connects to the public one. Before:
    # any internal address among the first name's made the target "internal", and a redirect to
    # loopback was then followed.
    address, resolver = zone

    two_addresses(resolver, "mixed.test", LAB_PUBLIC, "127.0.0.1")  # first: the address connected to
    cfg = config(f"""
        vantages:
          lab: {{resolver: ["{address}"]}}
        checks:
          - {{name: r, url: "http://mixed.test:{lab.port}/to?url=http://127.0.0.1:{lab.port}/admin"}}
        """)
    result = await probe(cfg)
    assert (result.verdict, result.reason) == (Verdict.DOWN, Reason.REDIRECT), result
    assert lab.internal_hits == 0


async def test_a_redirect_to_a_mixed_name_connects_only_to_its_public_address(
    lab: Lab, zone: tuple[str, ZoneResolver]
) -> None:
    # Whatever order the records come in, the internal one is never connected to.
    address, resolver = zone

    two_addresses(resolver, "mixed.test", "127.0.0.1", LAB_PUBLIC)  # the internal address first
    cfg = config(f"""
        vantages:
          lab: {{resolver: ["{address}"]}}
        checks:
          - {{name: r, url: "http://public.test:{lab.port}/to?url=http://mixed.test:{lab.port}/ok"}}
        """)
    result = await probe(cfg)
    assert (result.verdict, result.reason) == (Verdict.UP, None), result
    assert lab.internal_hits == 0
