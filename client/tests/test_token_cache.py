"""The agent's token cache (`vend_client.agent.tokens`) in one process over real HTTP: a
`CachingClient` gets the secret from pytest-httpserver playing the service, STS and KMS, and a
`TokenEndpoint` exchanges it at the stand-in IDaaS token endpoint. The clock is the test's, so
nothing here waits for a token to age."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from agent_world import IDS, KEY_ID, KEY_SECRET, World, world_on
from pytest_httpserver import HTTPServer
from together import ask_together

from vend_client import CachingClient, Credentials
from vend_client.agent.tokens import (
    AccessToken,
    TokenCache,
    TokenEndpoint,
    TokenEndpointError,
    check_scope,
    fresh_for,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(httpserver: HTTPServer) -> World:
    return world_on(httpserver)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@contextmanager
def _cache_parts(world: World) -> Iterator[tuple[CachingClient, TokenEndpoint]]:
    """What a token cache is made of, on the world: its secrets and its token endpoint."""
    with CachingClient(
        world.url,
        audience="vend-prod",
        credentials=Credentials(KEY_ID, KEY_SECRET),
        sts_endpoint=world.url,
        kms_endpoint=world.url,
        timeout_s=5,
    ) as secrets:
        yield secrets, TokenEndpoint(world.url + "/api/v2/iauths_system/oauth2/token", timeout_s=5)


@pytest.fixture
def cache(world: World, clock: Clock) -> Iterator[TokenCache]:
    with _cache_parts(world) as (secrets, endpoint):
        yield TokenCache(secrets, endpoint, clock=clock)


@pytest.mark.parametrize(
    ("expires_in", "fresh_for"),
    [(3600, 3240.0), (1000, 900.0), (100, 70.0), (31, 1.0)],  # 90% of it, and 30 s short
)
def test_a_token_is_served_from_memory_until_shortly_before_it_expires(
    cache: TokenCache, world: World, clock: Clock, expires_in: int, fresh_for: float
) -> None:
    world.token_endpoint.expires_in = expires_in
    first = cache.get(*IDS)
    clock.now = fresh_for - 0.01
    assert cache.get(*IDS) is first
    assert world.token_endpoint.hits == 1
    clock.now = fresh_for
    assert cache.get(*IDS).access_token != first.access_token
    assert world.token_endpoint.hits == 2


@pytest.mark.parametrize("expires_in", [30, 5, 0])
def test_a_token_with_30_s_or_less_to_live_is_not_cached(
    cache: TokenCache, world: World, expires_in: int
) -> None:
    world.token_endpoint.expires_in = expires_in
    cache.get(*IDS)
    cache.get(*IDS)
    assert world.token_endpoint.hits == 2
    assert len(cache) == 0


def test_refresh_skips_the_cache_and_caches_the_new_token(cache: TokenCache, world: World) -> None:
    first = cache.get(*IDS)
    second = cache.get(*IDS, refresh=True)
    assert second.access_token != first.access_token
    assert cache.get(*IDS) is second
    assert world.token_endpoint.hits == 2


def test_each_scope_is_its_own_token(cache: TokenCache, world: World) -> None:
    a = cache.get(*IDS, "api://a|read")
    b = cache.get(*IDS, "api://b|read")
    assert cache.get(*IDS, "api://a|read") is a
    assert a.access_token != b.access_token
    assert [s["form"].get("scope") for s in world.token_endpoint.seen] == [
        "api://a|read",
        "api://b|read",
    ]


def test_many_threads_asking_at_once_make_one_exchange(cache: TokenCache, world: World) -> None:
    got = ask_together(12, lambda: cache.get(*IDS), world.token_endpoint)
    assert len({id(token) for token in got}) == 1, got
    assert world.token_endpoint.hits == 1


def test_many_threads_asking_at_once_share_one_error_which_is_not_cached(
    cache: TokenCache, world: World
) -> None:
    world.token_endpoint.refusal = (400, {"error": "invalid_scope"})
    got = ask_together(6, lambda: cache.get(*IDS), world.token_endpoint)
    assert all(isinstance(e, TokenEndpointError) and e.error == "invalid_scope" for e in got)
    assert world.token_endpoint.hits == 1
    world.token_endpoint.refusal = None
    assert cache.get(*IDS).access_token
    assert world.token_endpoint.hits == 2


def test_the_answer_counts_down_and_its_repr_holds_no_token() -> None:
    token = AccessToken("tok-marker", "Bearer", 600, issued_at=1_000_000.0)
    assert token.answer(1_000_100.0) == {
        "access_token": "tok-marker",
        "token_type": "Bearer",
        "expires_in": 500,
        "expires_at": 1_000_600,
    }
    assert "tok-marker" not in repr(token) + str(token)


@pytest.mark.parametrize("scope", ["api://x|read:file", "a b c", "openid"])
def test_scopes_as_rfc_6749_writes_them_pass(scope: str) -> None:
    assert check_scope(scope) == scope


@pytest.mark.parametrize("scope", ["", "a  b", " a", "a ", 'a"b', "a\\b", "a\nb", "é", "x" * 1025])
def test_other_scopes_are_refused(scope: str) -> None:
    with pytest.raises(ValueError, match="scope"):
        check_scope(scope)


@pytest.mark.parametrize(
    ("template", "said"),
    [
        ("ftp://idaas.example/token", "http"),
        ("idaas.example/token", "http"),
        ("https://idaas.example/{tenant}/token", "{tenant}"),
    ],
)
def test_a_token_endpoint_that_is_not_a_url_template_is_refused(template: str, said: str) -> None:
    with pytest.raises(ValueError, match=said.replace("{", r"\{").replace("}", r"\}")):
        TokenEndpoint(template)


def test_a_token_without_a_life_is_not_cached_and_says_none() -> None:
    token = AccessToken("tok-marker", "Bearer", None, issued_at=1_000_000.0)
    assert token.answer(1_000_100.0) == {
        "access_token": "tok-marker",
        "token_type": "Bearer",
        "expires_in": None,
        "expires_at": None,
    }
    assert fresh_for(None) == 0.0


def test_an_expired_token_has_no_seconds_left() -> None:
    token = AccessToken("tok-marker", "Bearer", 600, issued_at=1_000_000.0)
    assert token.answer(1_000_600.5)["expires_in"] == 0
    assert token.answer(1_009_999.0)["expires_in"] == 0


def test_a_scope_of_the_longest_length_passes() -> None:
    scope = "x" * 1024
    assert check_scope(scope) == scope


def test_the_least_recently_used_token_goes_first_when_the_cache_is_full(
    world: World, clock: Clock
) -> None:
    with _cache_parts(world) as (secrets, endpoint):
        cache = TokenCache(secrets, endpoint, max_entries=2, clock=clock)
        a = cache.get(*IDS, "a")
        cache.get(*IDS, "b")
        assert cache.get(*IDS, "a") is a  # a is now used after b
        cache.get(*IDS, "c")
        assert len(cache) == 2
        assert world.token_endpoint.hits == 3
        assert cache.get(*IDS, "a") is a
        assert cache.get(*IDS, "c").access_token.endswith("scope-c")
        assert world.token_endpoint.hits == 3
        cache.get(*IDS, "b")  # it was dropped
        assert world.token_endpoint.hits == 4
        with pytest.raises(ValueError, match=r"^max_entries must be at least 1$"):
            TokenCache(secrets, endpoint, max_entries=0)
        one = TokenCache(secrets, endpoint, max_entries=1, clock=clock)
        one.get(*IDS, "a")
        one.get(*IDS, "b")
        assert len(one) == 1


def test_the_cache_holds_1000_tokens_by_default(cache: TokenCache) -> None:
    for n in range(1001):
        cache.get(*IDS, f"s{n}")
    assert len(cache) == 1000


def test_a_refreshed_token_too_short_to_cache_drops_the_one_before(
    cache: TokenCache, world: World
) -> None:
    first = cache.get(*IDS)
    world.token_endpoint.expires_in = 10
    second = cache.get(*IDS, refresh=True)
    assert second.access_token != first.access_token
    third = cache.get(*IDS)  # not the first one again: it was replaced, then not kept
    assert third.access_token not in (first.access_token, second.access_token)
    assert world.token_endpoint.hits == 3


def test_the_exchange_tried_again_with_the_secret_asked_anew_keeps_the_scope(
    cache: TokenCache, world: World
) -> None:
    world.service.secrets = ["CS-old-secret", "CS-secret-marker-1"]
    token = cache.get(*IDS, "api://a|read")
    assert token.access_token.endswith("scope-api://a|read")
    assert [s["form"].get("scope") for s in world.token_endpoint.seen] == ["api://a|read"] * 2
