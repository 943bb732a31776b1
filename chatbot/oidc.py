"""Tokens from an OIDC provider (Cognito, Auth0, Entra ID, Keycloak, Google...): RS256 or
ES256 JWTs checked against the keys the issuer publishes. The keys are found by
discovery (`<issuer>/.well-known/openid-configuration` names the `jwks_uri`), kept for
OIDC_JWKS_CACHE_SECONDS, and fetched again when a token names a key id (`kid`) not among
them (the provider rotated its keys), at most once per REFETCH_SECONDS so forged ids
cannot make the gateway hammer the provider. Issuer and audience must match exactly;
OIDC_LEEWAY_SECONDS allows for clocks that differ.

The user is the OIDC_USER_CLAIM (`sub`); roles come from OIDC_ROLES_CLAIM (a dotted path,
`realm_access.roles` for Keycloak, `cognito:groups` for Cognito), renamed by
OIDC_ROLE_MAP, keeping `agent` and `admin` (everyone signed in is a `user`)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx
import jwt

from chatbot.errors import Unauthorized, Unavailable

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
REFETCH_SECONDS = 30.0  # the least time between two fetches of the keys
FETCH_TIMEOUT = httpx.Timeout(5.0)
PRIVILEGED = ("agent", "admin")
DISCOVERY_PATH = "/.well-known/openid-configuration"


class OidcVerifier:
    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        user_claim: str = "sub",
        roles_claim: str = "roles",
        role_map: Mapping[str, str] | None = None,
        leeway_seconds: float = 60,
        cache_seconds: float = 3600,
        refetch_seconds: float = REFETCH_SECONDS,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self._user_claim = user_claim
        self._roles_path = roles_claim.split(".") if roles_claim else []
        self._role_map = dict(role_map or {})
        self._leeway = leeway_seconds
        self._cache_seconds = cache_seconds
        self._refetch_seconds = refetch_seconds
        self._http = http or httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -float("inf")
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self._http.aclose()

    async def verify(self, token: str) -> tuple[str, frozenset[str]]:
        """The token's user and roles; Unauthorized saying what is wrong with it, or
        Unavailable when the provider's keys cannot be fetched."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthorized("the token is not a JWT") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized(f"tokens must be signed with {' or '.join(ALGORITHMS)}")
        key = await self._key(header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),  # the key's type must fit the one named
                audience=self.audience,
                issuer=self.issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", self._user_claim]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired; sign in again") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized(f"the token was not issued by {self.issuer}") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(
                f"the token is not meant for this service ({self.audience})"
            ) from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("the token is not valid yet; check the clocks") from None
        except jwt.InvalidTokenError as err:
            raise Unauthorized(f"the token is not valid for this service: {err}") from None
        user = claims.get(self._user_claim)
        if not isinstance(user, str) or not user:
            raise Unauthorized(f"the token has no usable {self._user_claim} claim")
        return user, self._roles(claims)

    def _roles(self, claims: Mapping[str, Any]) -> frozenset[str]:
        found: Any = claims
        for part in self._roles_path:
            found = found.get(part) if isinstance(found, Mapping) else None
        if isinstance(found, str):
            found = found.replace(",", " ").split()
        names = [n for n in found if isinstance(n, str)] if isinstance(found, list) else []
        mapped = {self._role_map.get(n, n) for n in names}
        return frozenset({"user", *(r for r in PRIVILEGED if r in mapped)})

    async def _key(self, kid: Any) -> jwt.PyJWK:
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("the token names no signing key (kid)")
        now = time.monotonic()
        if kid not in self._keys or now - self._fetched_at > self._cache_seconds:
            async with self._lock:
                stale = time.monotonic() - self._fetched_at
                if stale > self._cache_seconds or (
                    kid not in self._keys and stale >= self._refetch_seconds
                ):
                    await self._fetch()
        key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("the token is signed with a key the issuer does not publish")
        return key

    async def _fetch(self) -> None:
        try:
            discovery = await self._json(
                f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"
            )
            if discovery.get("issuer") != self.issuer:
                raise ValueError(f"discovery names issuer {discovery.get('issuer')!r}")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise ValueError("discovery has no jwks_uri")
            keys = jwt.PyJWKSet.from_dict(await self._json(jwks_uri)).keys
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as err:
            log.warning("OIDC keys of %s not fetched: %s", self.issuer, err)
            self._fetched_at = time.monotonic()  # the refetch limit holds for failures too
            if self._keys:
                return  # keep the keys we have; a token signed by them still verifies
            raise Unavailable(
                "the sign-in provider's keys could not be fetched; try again shortly",
                retry_after=5,
            ) from None
        self._keys = {k.key_id: k for k in keys if k.key_id}
        self._fetched_at = time.monotonic()

    async def _json(self, url: str) -> dict[str, Any]:
        resp = await self._http.get(url, headers={"Accept": "application/json"})
        resp.raise_for_status()
        try:
            body = resp.json()
        except json.JSONDecodeError as err:
            raise ValueError(f"{url} is not JSON") from err
        if not isinstance(body, dict):
            raise ValueError(f"{url} is not a JSON object")
        return body
