"""The Redis store (`redis://` or `rediss://`; production: ApsaraDB for Redis or Tair), shared by
every instance. Each primitive is one round trip: a Lua script that Redis runs atomically.
Values are the record JSON under `vend:idem:<key>`, with the record's lifetime as the key's TTL.

Scripts (KEYS[1] the prefixed key):
- PUT: ARGV = record JSON, ttl. If the key holds a value equal to the record, nil (a retried put
  of our own record); if it holds another value, that value; else SET EX ttl and nil.
- REPLACE: ARGV = expected token, record JSON, ttl. If the key holds a record whose token is the
  expected one (or a value equal to the new record: a retried replace), SET EX ttl and 1; else 0.
- DELETE: ARGV = expected token. If the key holds a record whose token is the expected one, DEL
  and 1; else 0.

A connection refused or reset is retried once at once (the scripts make a repeated call
harmless); a timeout is not retried. Either, when it persists, is `StoreUnavailable`."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from shared.idempotency.record import IdempotencyRecord
from shared.idempotency.store import DEFAULT_TTL_S, StoreUnavailable, check_ttl

KEY_PREFIX = "vend:idem:"
EPOCH_KEY = "vend:epoch"
NOTE_PREFIX = "vend:note:"

_PUT_IF_ABSENT = """
local current = redis.call('GET', KEYS[1])
if current then
  if current == ARGV[1] then return false end
  return current
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""

# cjson.decode of a value that is not a JSON object must not raise inside the script: pcall.
_TOKEN_OF = """
local function token_of(value)
  local ok, decoded = pcall(cjson.decode, value)
  if ok and type(decoded) == 'table' then return decoded['token'] end
  return nil
end
"""

_REPLACE_IF_TOKEN = (
    _TOKEN_OF
    + """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if current ~= ARGV[2] and token_of(current) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""
)

_DELETE_IF_TOKEN = (
    _TOKEN_OF
    + """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if token_of(current) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""
)

T = TypeVar("T")


def _describe(url: str) -> tuple[str, str | None]:
    """The URL without credentials (`scheme://host:port/db`), and its password if any.
    Raises ValueError, without the URL in the message, if it is not a usable Redis URL."""
    parts = urlsplit(url)
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError("idempotency store URL: the port is not a number") from None
    if not parts.hostname:
        raise ValueError("idempotency store URL: no host (redis://host:port/db)")
    path = parts.path.strip("/")
    db = parse_qs(parts.query).get("db", [path or "0"])[0]
    if not db.isdigit():
        raise ValueError(
            "idempotency store URL: the database is not a number (redis://host:port/db)"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}/{db}", parts.password


class RedisStore:
    """One client, with its own connection pool, per store: open one per process and share it.
    Nothing connects until the first call."""

    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        timeout_s: float = 1.0,
    ) -> None:
        """`password`: Redis's, given apart from the URL (the service refuses a password given
        twice: shared.config). `timeout_s`: to connect, and for each answer."""
        self._where, in_url = _describe(url)
        self._password = in_url or password
        self._url = url  # may hold a password: never shown (repr and errors use _where)
        self._password_given = password
        self._pinger: redis.Redis | None = None
        self._epoch_seen: str | None = None
        self._client: redis.Redis = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,  # redis-py's own is 5 s
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            decode_responses=True,
            password=self._password_given,
        )
        self._put = self._client.register_script(_PUT_IF_ABSENT)
        self._replace = self._client.register_script(_REPLACE_IF_TOKEN)
        self._delete = self._client.register_script(_DELETE_IF_TOKEN)

    def __repr__(self) -> str:
        return f"RedisStore({self._where})"

    def close(self) -> None:
        """Close the pool's connections."""
        self._client.close()
        if self._pinger is not None:
            self._pinger.close()

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except redis.exceptions.OutOfMemoryError:
            # A Redis at maxmemory under `noeviction` refuses the write (redis-py raises its
            # "OOM ..." error as this class, the prefix taken off): the store is full, which
            # the caller meets as an unavailable store (nothing is created).
            raise StoreUnavailable(
                f"idempotency store {self._where} is full ({what}): OOM", code="OOM"
            ) from None
        except (RedisConnectionError, RedisTimeoutError) as exc:
            detail = str(exc)
            if self._password:
                for form in (self._password, unquote(self._password)):
                    detail = detail.replace(form, "***")
            name = type(exc).__name__
            raise StoreUnavailable(
                f"idempotency store {self._where} unavailable ({what}): {name}: {detail}",
                code=name,
                # A refused or reset connection is sent once more (the client's Retry above);
                # a timeout is not.
                attempts=2 if isinstance(exc, RedisConnectionError) else 1,
            ) from exc

    def ping(self, timeout_s: float) -> bool:
        """One PING, on connections of its own with `timeout_s` to connect and to answer and no
        retry, so that a readiness check never waits out the store's own timeouts and retries,
        nor queues behind requests."""
        try:
            return bool(self._probe(timeout_s).ping())
        except (redis.exceptions.RedisError, OSError):
            return False

    def _probe(self, timeout_s: float) -> redis.Redis:
        if self._pinger is None:
            self._pinger = redis.Redis.from_url(
                self._url,
                socket_connect_timeout=timeout_s,
                socket_timeout=timeout_s,
                retry=Retry(NoBackoff(), 0),
                password=self._password_given,
            )
        return self._pinger

    def risks(self, timeout_s: float, *, persistence: bool = True) -> list[str]:
        """What could make this Redis forget a record it acknowledged (contract section 8 holds
        only while it does not): an eviction policy that may drop keys once `maxmemory` is
        reached, persistence that is off, or records lost since this instance first looked (the
        marker `vend:epoch`, written once and never expiring, is gone or changed: the store came
        back empty). Each as a short phrase; [] when none is seen. `persistence=False` leaves
        out the persistence check (readiness does not fail on it: it is `vend doctor`'s). A
        server that refuses INFO or CONFIG (some managed Redis do) is taken at its word for
        what it does answer."""
        client = self._probe(timeout_s)
        found: list[str] = []
        try:
            memory = client.info("memory")
            policy = str(memory.get("maxmemory_policy", "noeviction"))
            if int(memory.get("maxmemory", 0) or 0) > 0 and policy != "noeviction":
                found.append(f"eviction: maxmemory-policy is {policy}, not noeviction")
            if persistence:
                found.extend(self._unpersisted(client))
            found.extend(self._epoch(client))
        except (redis.exceptions.RedisError, OSError, ValueError) as exc:
            found.append(f"unreadable: {type(exc).__name__}")
        return found

    @staticmethod
    def _unpersisted(client: redis.Redis) -> list[str]:
        if int(client.info("persistence").get("aof_enabled", 0) or 0):
            return []
        with contextlib.suppress(redis.exceptions.ResponseError):  # CONFIG may be refused
            if not client.config_get("save").get("save", ""):
                return ["persistence: neither AOF nor RDB snapshots are on"]
        return []

    def _epoch(self, client: redis.Redis) -> list[str]:
        mine = uuid.uuid4().hex
        if client.set(EPOCH_KEY, mine, nx=True):  # absent: a new store, or one that forgot
            lost = self._epoch_seen is not None
            self._epoch_seen = mine
            return ["lost: the store came back empty since this instance started"] if lost else []
        current = client.get(EPOCH_KEY)
        seen = current.decode() if isinstance(current, bytes) else str(current)
        if self._epoch_seen is None:
            self._epoch_seen = seen
            return []
        if seen != self._epoch_seen:
            self._epoch_seen = seen
            return ["lost: the store was emptied or replaced since this instance started"]
        return []

    def put_if_absent(
        self, key: str, record: IdempotencyRecord, ttl_s: int = DEFAULT_TTL_S
    ) -> IdempotencyRecord | None:
        check_ttl(ttl_s)
        existing = self._call(
            "put_if_absent",
            lambda: self._put(keys=[KEY_PREFIX + key], args=[record.to_json(), ttl_s]),
        )
        return None if existing is None else IdempotencyRecord.from_json(existing)

    def get(self, key: str) -> IdempotencyRecord | None:
        value = self._call("get", lambda: self._client.get(KEY_PREFIX + key))
        return None if value is None else IdempotencyRecord.from_json(value)

    def replace_if_token(
        self, key: str, expected_token: str, record: IdempotencyRecord, ttl_s: int = DEFAULT_TTL_S
    ) -> bool:
        check_ttl(ttl_s)
        replaced = self._call(
            "replace_if_token",
            lambda: self._replace(
                keys=[KEY_PREFIX + key], args=[expected_token, record.to_json(), ttl_s]
            ),
        )
        return bool(replaced == 1)

    def delete_if_token(self, key: str, expected_token: str) -> bool:
        deleted = self._call(
            "delete_if_token", lambda: self._delete(keys=[KEY_PREFIX + key], args=[expected_token])
        )
        return bool(deleted == 1)

    def remember(self, key: str, value: str, ttl_s: int) -> None:
        check_ttl(ttl_s)
        self._call("remember", lambda: self._client.set(NOTE_PREFIX + key, value, ex=ttl_s))

    def recall(self, key: str) -> str | None:
        value = self._call("recall", lambda: self._client.get(NOTE_PREFIX + key))
        return None if value is None else str(value)
