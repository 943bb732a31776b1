"""A local OIDC issuer for the sign-in tests: discovery and a JWKS endpoint over HTTP,
keys generated here (RSA and EC P-256), rotated on demand, each fetch counted; and
tokens signed with those keys as a provider signs them."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from loadtest.fakes import ServerThread


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    @classmethod
    def new(cls, alg: str = "RS256") -> SigningKey:
        private = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if alg == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        return cls(kid=f"k-{uuid.uuid4().hex[:8]}", alg=alg, private=private)

    def jwk(self) -> dict[str, Any]:
        kind = jwt.algorithms.RSAAlgorithm if self.alg == "RS256" else jwt.algorithms.ECAlgorithm
        public = kind.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}


@dataclass
class FakeIssuer:
    """`keys` are published; `fetches` counts JWKS requests; `down` answers 503."""

    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.new()])
    fetches: int = 0
    down: bool = False
    _server: ServerThread | None = None

    def start(self) -> FakeIssuer:
        app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
            ]
        )
        self._server = ServerThread(app).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    async def _discovery(self, request: Request) -> Response:
        if self.down:
            return Response("down", status_code=503)
        return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/jwks"})

    async def _jwks(self, request: Request) -> Response:
        self.fetches += 1
        if self.down:
            return Response("down", status_code=503)
        return JSONResponse({"keys": [k.jwk() for k in self.keys]})

    def token(
        self,
        sub: str = "olivia",
        *,
        key: SigningKey | None = None,
        audience: str = "chatbot",
        issuer: str | None = None,
        ttl: int = 300,
        iat_offset: int = 0,
        **claims: Any,
    ) -> str:
        key = key or self.keys[0]
        now = int(time.time()) + iat_offset
        body = {
            "iss": issuer or self.url,
            "aud": audience,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            **claims,
        }
        return jwt.encode(body, key.private, key.alg, headers={"kid": key.kid})
