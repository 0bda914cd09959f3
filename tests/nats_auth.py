"""NATS decentralized auth for tests, made as `nsc` makes it: an operator, accounts and users as
nkeys, their JWTs signed each by its issuer, the server's operator-mode configuration and the users'
`.creds` files. Test scaffolding only; an operator makes real ones with `nsc` (docs/agents.md).

A JWT is `header.claims.signature`, each part base64url without padding. The header says
{"typ": "JWT", "alg": "ed25519-nkey"}; the signature is the issuer's ed25519 signature of the text
`header.claims`. The claims carry `jti` (the base32 SHA-512/256 of the claims without it), `iat`,
`iss` (the issuer's public key), `sub` (the subject's), `name`, and under `nats` the `type`
(operator, account, user), `version` 2 and what the type allows. -1 means unlimited; a limit left
out is 0, which for connections or subscriptions means none at all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys

UNLIMITED = -1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Key:
    """An nkey: its seed (secret) and its public key, whose first letter says its role."""

    seed: bytes

    @classmethod
    def new(cls, prefix: int) -> Key:
        return cls(nkeys.encode_seed(os.urandom(32), prefix))

    @property
    def public(self) -> str:
        return str(nkeys.from_seed(bytearray(self.seed)).public_key.decode())

    def sign(self, data: bytes) -> bytes:
        return bytes(nkeys.from_seed(bytearray(self.seed)).sign(data))


def encode_jwt(issuer: Key, subject: str, name: str, nats: dict[str, Any]) -> str:
    """The JWT of `nats` claims about `subject`, signed by `issuer`."""
    claims: dict[str, Any] = {
        "iat": int(time.time()),
        "iss": issuer.public,
        "name": name,
        "sub": subject,
    }
    digest = hashlib.new("sha512_256", json.dumps(claims, separators=(",", ":")).encode()).digest()
    claims = {"jti": base64.b32encode(digest).rstrip(b"=").decode(), **claims, "nats": nats}
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{header}.{body}.{_b64(issuer.sign(f'{header}.{body}'.encode()))}"


def decode_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (for assertions)."""
    body = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return claims


@dataclass(frozen=True)
class Account:
    name: str
    key: Key
    jwt: str


@dataclass(frozen=True)
class User:
    name: str
    key: Key
    jwt: str

    def creds(self) -> str:
        """The `.creds` file's text, in the format `nsc` writes and NATS clients read."""
        return (
            f"-----BEGIN NATS USER JWT-----\n{self.jwt}\n------END NATS USER JWT------\n\n"
            "************************* IMPORTANT *************************\n"
            "NKEY Seed printed below can be used to sign and prove identity.\n"
            "NKEYs are sensitive and should be treated as secrets.\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{self.key.seed.decode()}\n------END USER NKEY SEED------\n\n"
            "*************************************************************\n"
        )

    def write(self, path: Path) -> Path:
        path.write_text(self.creds())
        path.chmod(0o600)
        return path


class Operator:
    """An operator, its system account, and the accounts and users it signs."""

    def __init__(self, name: str = "test-operator") -> None:
        self.key = Key.new(nkeys.PREFIX_BYTE_OPERATOR)
        self.jwt = encode_jwt(self.key, self.key.public, name, {"type": "operator", "version": 2})
        self.accounts: list[Account] = []
        self.system = self.account("SYS", jetstream=False)

    def account(self, name: str, *, jetstream: bool = True) -> Account:
        """A new account; with `jetstream`, unlimited JetStream (in operator mode it is per account)."""
        key = Key.new(nkeys.PREFIX_BYTE_ACCOUNT)
        limits: dict[str, Any] = {
            "subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED, "imports": UNLIMITED,
            "exports": UNLIMITED, "wildcards": True, "conn": UNLIMITED, "leaf": UNLIMITED,
        }  # fmt: skip
        if jetstream:
            limits |= {"mem_storage": UNLIMITED, "disk_storage": UNLIMITED, "streams": UNLIMITED,
                       "consumer": UNLIMITED}  # fmt: skip
        nats = {
            "limits": limits,
            "default_permissions": {"pub": {}, "sub": {}},
            "type": "account",
            "version": 2,
        }
        account = Account(name, key, encode_jwt(self.key, key.public, name, nats))
        self.accounts.append(account)
        return account

    def user(
        self, account: Account, name: str, *, pub: list[str] | None = None, sub: list[str] | None = None
    ) -> User:
        """A user of `account`; `pub`/`sub`: the subjects it may publish / subscribe to (None: any)."""
        key = Key.new(nkeys.PREFIX_BYTE_USER)
        nats: dict[str, Any] = {
            "pub": {} if pub is None else {"allow": pub},
            "sub": {} if sub is None else {"allow": sub},
            "subs": UNLIMITED, "data": UNLIMITED, "payload": UNLIMITED, "type": "user", "version": 2,
        }  # fmt: skip
        return User(name, key, encode_jwt(account.key, key.public, name, nats))

    def server_config(self) -> str:
        """The operator-mode part of a nats-server configuration: every account preloaded in memory."""
        preload = ",\n".join(f"  {a.key.public}: {a.jwt}" for a in self.accounts)
        return (
            f"operator: {self.jwt}\nsystem_account: {self.system.key.public}\n"
            f"resolver: MEMORY\nresolver_preload: {{\n{preload}\n}}\n"
        )
