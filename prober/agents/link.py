"""The connection to NATS, the same for agents and the collector: URL, credentials, TLS, reconnects."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import nats
from nats.aio.client import Client

from prober.model import ProberError

log = logging.getLogger("prober.agents")

# What a client keeps while disconnected (results published meanwhile); beyond it publishing fails,
# and an agent counts and logs what it could not keep. About 20,000 results of 800 bytes.
RECONNECT_BUFFER = 16 * 1024 * 1024
ERROR_LOG_EVERY = 60.0  # seconds between two log lines with the same error from the server
FLUSH_TIMEOUT = 2.0  # seconds a full buffer may wait for the socket before publishing gives up


class LinkError(ProberError):
    """NATS cannot be reached or refused what was asked."""


@dataclass(frozen=True)
class Link:
    """Where NATS is and how to log in: `nats://`, `tls://` (user:password@ allowed), creds, CA file."""

    url: str
    creds: Path | None = None
    ca: Path | None = None

    @property
    def shown(self) -> str:
        """The URL without its password, for logs and errors."""
        return ",".join(_without_password(u.strip()) for u in self.url.split(","))

    def tls(self) -> ssl.SSLContext | None:
        """The TLS context: with the CA file if one was given; None for plain nats:// without one."""
        if self.ca is None and not self.url.startswith("tls://"):
            return None
        try:
            return ssl.create_default_context(cafile=None if self.ca is None else str(self.ca))
        except (OSError, ssl.SSLError) as exc:
            raise LinkError(f"--nats-ca {self.ca}: {exc}") from exc


async def connect(
    link: Link, name: str, *, retry_for: float | None = None, buffer: int = RECONNECT_BUFFER
) -> Client:
    """Connect, reconnecting for ever once connected; the first connection is tried for `retry_for` s
    (None: once), since an agent may well start before its NATS server does."""
    if link.creds is not None:
        check_creds(link.creds)
    tls = link.tls()

    said: dict[str, float] = {}  # error text -> when last logged
    last: list[str] = []  # the latest error: why the first connection failed (nats-py says "no servers")

    async def on_error(exc: Exception) -> None:
        # The server says why it refused each message (a permissions violation per publish): the same
        # words once a minute are enough.
        text = str(exc) or type(exc).__name__
        last[:] = [text]
        now = time.monotonic()
        if now - said.get(text, -ERROR_LOG_EVERY) >= ERROR_LOG_EVERY:
            if len(said) > 100:
                said.clear()
            said[text] = now
            log.warning("nats %s: %s", link.shown, text)

    made: list[Client] = []

    async def on_disconnect() -> None:
        if made and made[0].is_closed:
            return  # closed on purpose
        log.warning("nats %s: disconnected; reconnecting (what is published waits in a %d KiB buffer)",
                    link.shown, buffer >> 10)  # fmt: skip

    async def on_reconnect() -> None:
        log.info("nats %s: reconnected", link.shown)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + (retry_for or 0.0)
    delay = 0.2
    logged_at = -ERROR_LOG_EVERY
    while True:
        last.clear()
        try:
            # With -1 nats-py would try the first connection for ever, inside connect(), whatever the
            # server says (refused, or an authorization violation): tried twice here, for ever later.
            nc = await nats.connect(
                link.url.split(","), name=name, tls=tls, user_credentials=None if link.creds is None
                else str(link.creds), allow_reconnect=True, max_reconnect_attempts=1,
                reconnect_time_wait=0.5, connect_timeout=3, pending_size=buffer,
                flush_timeout=FLUSH_TIMEOUT, error_cb=on_error, disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
            )  # fmt: skip
            nc.options["max_reconnect_attempts"] = -1  # read at each reconnection
            made.append(nc)
            return nc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            why = last[0] if last else str(exc) or type(exc).__name__
            if loop.time() >= deadline:
                raise LinkError(f"cannot connect to NATS at {link.shown}: {why}") from exc
            if loop.time() - logged_at >= ERROR_LOG_EVERY:
                logged_at = loop.time()
                log.warning("cannot connect to NATS at %s (%s); trying again", link.shown, why)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def check_creds(path: Path) -> None:
    """Refuse a credentials file nats-py could not use, before it tries: it would fail at every
    reconnection, or loop for ever reading a file without a JWT block."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise LinkError(f"--nats-creds {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LinkError(f"--nats-creds {path}: {exc}") from None

    def block(begin: str) -> str:
        # nats-py reads the one line after the BEGIN line, as nsc writes it.
        at = next((i for i, line in enumerate(lines) if begin in line), None)
        if at is None or at + 1 >= len(lines):
            raise LinkError(f"--nats-creds {path}: not a NATS credentials file (no {begin} block)")
        return lines[at + 1].strip()

    token = block("BEGIN NATS USER JWT")
    seed = block("BEGIN USER NKEY SEED")
    if token.count(".") != 2:
        raise LinkError(f"--nats-creds {path}: the user JWT is malformed")
    try:
        import nkeys
    except ImportError as exc:
        raise LinkError(f"--nats-creds needs nkeys: pip install 'prober[agents]' ({exc})") from None
    try:
        key = nkeys.from_seed(bytearray(seed.encode()))
    except Exception as exc:  # nkeys raises several kinds, and binascii's for bad base32
        raise LinkError(f"--nats-creds {path}: the user seed is malformed ({type(exc).__name__})") from None
    public = bytes(key.public_key).decode()
    try:
        body = token.split(".")[1]
        subject = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["sub"]
    except (ValueError, TypeError, KeyError) as exc:
        raise LinkError(f"--nats-creds {path}: the user JWT is malformed ({type(exc).__name__})") from None
    if subject != public:
        raise LinkError(f"--nats-creds {path}: the seed is not the one of the JWT's user ({subject})")


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
