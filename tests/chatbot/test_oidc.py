"""Sign-in with an OIDC provider: tokens of a local issuer (discovery and JWKS over HTTP,
keys generated in the test) checked by the verifier the gateway uses, then through the
gateway itself beside HS256 tokens: accepted, and rejected for the wrong issuer,
audience, expiry, an unknown key (until the issuer publishes it: a rotation), a forged
algorithm; a provider that is down is a 503, not a 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from temporalio.worker import Worker

from chatbot.auth import mint_token
from chatbot.errors import Unauthorized, Unavailable
from chatbot.oidc import OidcVerifier
from shared.config import Settings
from tests.oidc_support import FakeIssuer, SigningKey


@pytest.fixture
def issuer() -> Iterator[FakeIssuer]:
    fake = FakeIssuer(keys=[SigningKey.new("RS256"), SigningKey.new("ES256")]).start()
    yield fake
    fake.stop()


@pytest.fixture
async def verifier(issuer: FakeIssuer) -> AsyncIterator[OidcVerifier]:
    checker = OidcVerifier(issuer.url, "chatbot", leeway_seconds=30, refetch_seconds=0)
    yield checker
    await checker.close()


async def test_rs256_and_es256_tokens_of_the_issuer_are_accepted_with_their_roles(
    issuer: FakeIssuer, verifier: OidcVerifier
) -> None:
    rsa_key, ec_key = issuer.keys
    assert await verifier.verify(issuer.token("olivia", key=rsa_key)) == (
        "olivia",
        frozenset({"user"}),
    )
    user, roles = await verifier.verify(issuer.token("pat", key=ec_key, roles=["agent", "x"]))
    assert user == "pat" and roles == {"user", "agent"}  # unknown role names are dropped
    assert issuer.fetches == 1  # the keys were fetched once, then kept


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"issuer": "https://evil.example"}, "was not issued by"),
        ({"audience": "another-app"}, "is not meant for this service (chatbot)"),
        ({"ttl": -120}, "has expired"),  # past the 30 s leeway
        ({"iat_offset": 120}, "not valid yet"),  # nbf two minutes ahead
    ],
)
async def test_tokens_are_refused_saying_why(
    issuer: FakeIssuer, verifier: OidcVerifier, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(Unauthorized, match=message.replace("(", r"\(").replace(")", r"\)")):
        await verifier.verify(issuer.token(**changes))


async def test_the_leeway_allows_for_a_clock_a_little_off(
    issuer: FakeIssuer, verifier: OidcVerifier
) -> None:
    user, _ = await verifier.verify(issuer.token(iat_offset=20))  # nbf 20 s ahead, leeway 30
    assert user == "olivia"
    user, _ = await verifier.verify(issuer.token(ttl=-10))  # expired 10 s ago
    assert user == "olivia"


async def test_an_unknown_key_is_refused_until_the_issuer_rotates_to_it(
    issuer: FakeIssuer, verifier: OidcVerifier
) -> None:
    await verifier.verify(issuer.token())  # the first keys, fetched
    rotated = SigningKey.new("RS256")
    with pytest.raises(Unauthorized, match="a key the issuer does not publish"):
        await verifier.verify(issuer.token(key=rotated))  # refetched: still not there
    issuer.keys = [rotated]  # the provider rotates
    assert (await verifier.verify(issuer.token("quinn", key=rotated)))[0] == "quinn"
    assert issuer.fetches == 3


async def test_forged_key_ids_do_not_make_it_fetch_the_keys_each_time(
    issuer: FakeIssuer,
) -> None:
    checker = OidcVerifier(issuer.url, "chatbot")  # the shipped 30 s between fetches
    try:
        await checker.verify(issuer.token())
        for _ in range(5):
            with pytest.raises(Unauthorized):
                await checker.verify(issuer.token(key=SigningKey.new()))
        assert issuer.fetches == 1
    finally:
        await checker.close()


async def test_algorithm_tricks_are_refused(issuer: FakeIssuer, verifier: OidcVerifier) -> None:
    rsa_key = issuer.keys[0]
    public_pem = rsa_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = {"iss": issuer.url, "aud": "chatbot", "sub": "mallory", "exp": 2_000_000_000}
    # HS256 "signed" with the public key, naming the RSA key: the classic confusion (built
    # by hand: PyJWT itself refuses to use a public key as an HMAC secret).
    confused = _hs256_by_hand(body, public_pem, rsa_key.kid)
    with pytest.raises(Unauthorized, match="must be signed with RS256 or ES256"):
        await verifier.verify(confused)
    unsigned = jwt.encode(body, None, "none", headers={"kid": rsa_key.kid})
    with pytest.raises(Unauthorized, match="must be signed with RS256 or ES256"):
        await verifier.verify(unsigned)
    ec_key = issuer.keys[1]  # RS256 named, the EC key's id: the key does not fit
    swapped = jwt.encode(body, rsa_key.private, "RS256", headers={"kid": ec_key.kid})
    with pytest.raises(Unauthorized):
        await verifier.verify(swapped)
    with pytest.raises(Unauthorized, match="not a JWT"):
        await verifier.verify("not.a.jwt\x00")


def _hs256_by_hand(body: dict[str, object], secret: bytes, kid: str) -> str:
    def part(value: object) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{part(body)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


async def test_a_provider_that_is_down_is_unavailable_not_unauthorized(
    issuer: FakeIssuer, verifier: OidcVerifier
) -> None:
    issuer.down = True
    with pytest.raises(Unavailable, match="keys could not be fetched"):
        await verifier.verify(issuer.token())
    issuer.down = False
    await verifier.verify(issuer.token())
    issuer.down = True  # keys in hand: tokens signed with them still verify
    assert (await verifier.verify(issuer.token("rita")))[0] == "rita"


@pytest.fixture
def settings(settings: Settings, issuer: FakeIssuer) -> Settings:
    oidc = {
        "oidc_issuer": issuer.url,
        "oidc_audience": "chatbot",
        "oidc_roles_claim": "app.roles",  # nested, as Keycloak's realm_access.roles
        "oidc_role_map": {"support": "agent"},
    }
    return settings.model_copy(update=oidc)


async def test_the_gateway_takes_oidc_and_hs256_tokens_with_their_roles(
    worker: Worker, gateway: str, settings: Settings, issuer: FakeIssuer
) -> None:
    assert settings.jwt_secret is not None
    hs256 = mint_token(settings.jwt_secret.get_secret_value(), "sam", roles=["admin"])
    oidc = issuer.token("tess", app={"roles": ["support"]})
    async with httpx.AsyncClient(base_url=f"{gateway}/v1", timeout=30) as client:

        async def me(token: str) -> httpx.Response:
            return await client.get("/me", headers={"Authorization": f"Bearer {token}"})

        got = (await me(oidc)).json()
        assert got == {"user_id": "tess", "dev_mode": False, "roles": ["agent", "user"]}
        got = (await me(hs256)).json()
        assert got == {"user_id": "sam", "dev_mode": False, "roles": ["admin", "user"]}
        refused = await me(issuer.token("tess", audience="other"))
        assert refused.status_code == 401
        assert "not meant for this service" in refused.json()["error"]["message"]
        assert refused.headers["www-authenticate"].startswith("Bearer")
        # A session is the OIDC user's like any other.
        headers = {"Authorization": f"Bearer {oidc}"}
        made = await client.post("/sessions", json={"title": "mine"}, headers=headers)
        assert made.status_code == 201, made.text
