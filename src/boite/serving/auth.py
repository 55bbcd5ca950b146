"""Bearer tokens: an optional guard on everything but the health endpoints.

The tokens come from an environment variable (never from boite.yaml, which is
committed), as a comma-separated list; each may carry an expiry after ``@``:
``s3cret,0ther@2026-12-31T00:00:00Z``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from boite.errors import ConfigError, RequestError


@dataclass(frozen=True)
class Token:
    secret: bytes
    expires: datetime | None


class Tokens:
    def __init__(self, tokens: list[Token], now: Callable[[], datetime]) -> None:
        self.tokens = tokens
        self.now = now

    @classmethod
    def parse(cls, text: str, *, variable: str, now: Callable[[], datetime]) -> Tokens:
        tokens = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            secret, _, until = part.partition("@")
            expires = None
            if until:
                try:
                    expires = datetime.fromisoformat(until)
                except ValueError:
                    raise ConfigError(
                        f"the expiry {until!r} of a token in ${variable} is not an ISO 8601 time",
                        hint="Write TOKEN@2026-12-31T00:00:00Z.",
                    ) from None
                if expires.tzinfo is None:
                    expires = expires.replace(tzinfo=UTC)
            if len(secret) < 16:
                raise ConfigError(
                    f"a token in ${variable} has {len(secret)} characters; use at least 16",
                    hint="For example: python -c 'import secrets; print(secrets.token_urlsafe())'",
                )
            tokens.append(Token(secret.encode(), expires))
        if not tokens:
            raise ConfigError(
                f"the environment variable ${variable} (token_env) is empty or unset",
                hint="Set it to the bearer token(s) clients must send, or remove token_env.",
            )
        return cls(tokens, now)

    def check(self, header: str | None) -> None:
        if not header:
            raise RequestError(
                "this server needs a bearer token",
                field="Authorization",
                status=401,
                hint="Send the header 'Authorization: Bearer <token>'.",
            )
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise RequestError(
                "the Authorization header must read 'Bearer <token>'",
                field="Authorization",
                status=401,
            )
        candidate = given.strip().encode()
        for token in self.tokens:
            if hmac.compare_digest(candidate, token.secret):
                if token.expires is not None and self.now() >= token.expires:
                    raise RequestError(
                        f"the bearer token expired at {token.expires.isoformat()}",
                        field="Authorization",
                        status=401,
                        hint="Ask for a new token.",
                    )
                return
        raise RequestError("the bearer token is not valid", field="Authorization", status=401)
