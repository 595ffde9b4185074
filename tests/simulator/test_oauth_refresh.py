"""The OAuth server's refresh endpoint: the answer, rotation, refusals, and the old token."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from exporter.simulator import Catalog, FaultSettings, PortalSettings

from .helpers import Answer, FakeClock, PortalClient, portal_client

EXPIRED = {"error": "expired_token", "error_description": "The access token provided has expired"}


def _grant(client: PortalClient, **overrides: str) -> dict[str, str]:
    portal = client.running.portal
    return {
        "grant_type": "refresh_token",
        "client_id": portal.settings.client_id,
        "client_secret": portal.settings.client_secret,
        "refresh_token": portal.current_refresh_token,
        **overrides,
    }


async def _refresh(client: PortalClient, **overrides: str) -> Answer:
    query = urlencode(_grant(client, **overrides))
    return await client.send("GET", f"{client.running.token_url}?{query}")


async def test_token_url_is_under_oauth(client: PortalClient) -> None:
    assert client.running.token_url == client.running.base_url + "/oauth/token/"


async def test_refresh_answers_the_documented_fields(client: PortalClient) -> None:
    answer = await _refresh(client)
    assert answer.status == 200
    body: dict[str, Any] = answer.json
    assert set(body) == {
        "access_token",
        "refresh_token",
        "expires",
        "expires_in",
        "client_endpoint",
        "server_endpoint",
        "domain",
        "member_id",
        "scope",
        "status",
        "user_id",
    }
    portal = client.running.portal
    assert body["access_token"] == portal.current_access_token
    assert body["refresh_token"] == portal.current_refresh_token
    assert body["client_endpoint"] == client.running.oauth_url
    assert body["expires_in"] == 3600
    assert abs(body["expires"] - (time.time() + 3600)) < 5
    assert body["user_id"] == portal.settings.user_id
    assert client.stats.token_refreshes == 1


async def test_refresh_replaces_both_tokens(client: PortalClient) -> None:
    settings = client.running.portal.settings
    body = (await _refresh(client)).json
    assert body["access_token"] != settings.access_token
    assert body["refresh_token"] != settings.refresh_token


async def test_the_new_access_token_works_and_the_old_one_is_expired(
    client: PortalClient,
) -> None:
    old = client.running.portal.current_access_token
    new = (await _refresh(client)).json["access_token"]
    url = client.running.oauth_url + "catalog.productImage.getFields"
    assert (await client.send("POST", url, json={"auth": new})).status == 200
    stale = await client.send("POST", url, json={"auth": old})
    assert (stale.status, stale.json) == (401, EXPIRED)
    assert client.stats.expired_tokens == 1


async def test_a_used_refresh_token_is_invalid_grant(client: PortalClient) -> None:
    used = client.running.portal.current_refresh_token
    await _refresh(client)
    answer = await _refresh(client, refresh_token=used)
    assert answer.status == 400
    assert answer.json == {"error": "invalid_grant", "error_description": "Invalid refresh token"}
    assert (client.stats.token_refreshes, client.stats.refused_refreshes) == (1, 1)


async def test_refresh_tokens_keep_rotating(client: PortalClient) -> None:
    seen = set()
    for _ in range(3):
        body = (await _refresh(client)).json
        seen.add(body["refresh_token"])
    assert len(seen) == 3
    assert client.stats.token_refreshes == 3


async def test_a_wrong_client_secret_is_invalid_client(client: PortalClient) -> None:
    before = client.running.portal.current_access_token
    answer = await _refresh(client, client_secret="wrong")
    assert answer.json["error"] == "invalid_client"
    assert client.running.portal.current_access_token == before


async def test_a_wrong_client_id_is_invalid_client(client: PortalClient) -> None:
    assert (await _refresh(client, client_id="app.other")).json["error"] == "invalid_client"


async def test_a_missing_parameter_or_other_grant_is_invalid_request(client: PortalClient) -> None:
    grant = _grant(client)
    del grant["client_secret"]
    missing = await client.send("GET", f"{client.running.token_url}?{urlencode(grant)}")
    other = await _refresh(client, grant_type="authorization_code")
    assert (missing.status, missing.json["error"]) == (400, "invalid_request")
    assert (other.status, other.json["error"]) == (400, "invalid_request")
    assert client.stats.refused_refreshes == 2


async def test_refresh_by_post_form_works(client: PortalClient) -> None:
    answer = await client.send("POST", client.running.token_url, data=_grant(client))
    assert answer.status == 200
    assert answer.json["access_token"] == client.running.portal.current_access_token


async def test_a_link_signed_with_the_old_token_is_expired_after_a_refresh(
    client: PortalClient, catalog: Catalog
) -> None:
    product_id, image_id = catalog.pairs()[0]
    got = await client.call_oauth(
        "catalog.productImage.get", {"productId": product_id, "id": image_id}
    )
    url = got.json["result"]["productImage"]["downloadUrl"]
    await _refresh(client)
    answer = await client.download(url)
    assert (answer.status, answer.json) == (401, EXPIRED)


async def test_the_token_endpoint_is_outside_the_portals_counters_and_faults(
    catalog: Catalog,
) -> None:
    faults = FaultSettings(error_500=1.0, drop=1.0, slow=1.0)
    async with portal_client(catalog, PortalSettings(rps=2.0, burst=0, faults=faults)) as client:
        answers = [await _refresh(client) for _ in range(3)]
        stats = client.stats
    assert [answer.status for answer in answers] == [200, 200, 200]
    assert (stats.http_requests, stats.rate_limited) == (0, 0)
    assert stats.faults == {}


async def test_a_refreshed_token_lives_token_ttl_from_its_refresh(catalog: Catalog) -> None:
    clock = FakeClock(1000.0)
    settings = PortalSettings(rps=None, faults=FaultSettings(token_ttl=60.0))
    async with portal_client(catalog, settings, clock=clock) as client:
        clock.advance(100.0)  # the first token has expired
        body = (await _refresh(client)).json
        clock.advance(59.0)
        alive = await client.call_oauth("catalog.productImage.getFields")
        clock.advance(1.0)
        expired = await client.call_oauth("catalog.productImage.getFields")
    assert body["expires_in"] == 60
    assert (alive.status, expired.status) == (200, 401)


async def test_new_credentials_in_settings_restart_the_pair(client: PortalClient) -> None:
    await _refresh(client)
    portal = client.running.portal
    portal.settings = PortalSettings(rps=None, access_token="a" * 64, refresh_token="r" * 64)
    assert (portal.current_access_token, portal.current_refresh_token) == ("a" * 64, "r" * 64)
