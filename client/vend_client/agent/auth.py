"""The agent's own token: what a caller on this machine shows in `X-Vend-Agent-Token`, so that a
page in a browser, or a request another program was tricked into sending (SSRF), cannot read
secrets from localhost. It comes from `VEND_AGENT_TOKEN` or a token file, never both.

The file is created if absent (mode 0600, a random value) and refused when anyone but its owner
may read or write it, as ssh refuses such a key: a token others can read guards nothing."""

from __future__ import annotations

import contextlib
import hmac
import os
import re
import secrets
import stat
import tempfile
from pathlib import Path

__all__ = ["MIN_CHARS", "AgentTokenError", "NoAgentToken", "agent_token", "matches"]

MIN_CHARS = 16
# What a header value carries unchanged: visible ASCII, no space.
_TOKEN = re.compile(r"[\x21-\x7e]+")


class AgentTokenError(Exception):
    """The agent cannot have a token it may trust; the message says why (never the token)."""


class NoAgentToken(AgentTokenError):
    """No usable token was given (none, two, or one that cannot be a token)."""


def agent_token(env_value: str | None, token_file: str | None) -> str:
    """The token from `VEND_AGENT_TOKEN` (`env_value`) or `token_file`, created if absent."""
    if env_value and token_file:
        raise NoAgentToken("give VEND_AGENT_TOKEN or --token-file, not both")
    if env_value:
        return _checked(env_value.strip(), "VEND_AGENT_TOKEN", NoAgentToken)
    if token_file:
        return _checked(_read_or_create(Path(token_file)), token_file, AgentTokenError)
    raise NoAgentToken(
        "the agent needs a token its callers must send: set VEND_AGENT_TOKEN, or give "
        "--token-file PATH (created with a random token if absent)"
    )


def matches(sent: str | None, token: str) -> bool:
    """Whether the header's value is the token, in time that does not depend on where they
    differ."""
    if sent is None:
        return False
    # A WSGI header value is its bytes read as latin-1: encoding it back gives those bytes.
    return hmac.compare_digest(sent.encode("latin-1", "replace"), token.encode("ascii"))


def _checked(token: str, where: str, error: type[AgentTokenError]) -> str:
    if not _TOKEN.fullmatch(token):
        raise error(f"{where}: the token must be visible ASCII without spaces")
    if len(token) < MIN_CHARS:
        raise error(f"{where}: the token is shorter than {MIN_CHARS} characters")
    return token


def _read_or_create(path: Path) -> str:
    try:
        return _read_private(path)
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    try:
        _create(path, token)
    except FileExistsError:  # another agent made it meanwhile: that one is the token
        try:
            return _read_private(path)
        except FileNotFoundError:  # the name is taken, by a link to nothing
            raise AgentTokenError(f"{path} is a link to a file that does not exist") from None
    return token


def _read_private(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise AgentTokenError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        # Checked on the open descriptor, not the name: what is read is what was checked. Not
        # through a file object, which cannot be made on a directory's descriptor.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AgentTokenError(f"{path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise AgentTokenError(f"{path} belongs to another user: it must be the agent's own")
        if info.st_mode & 0o077:
            mode = stat.S_IMODE(info.st_mode)
            raise AgentTokenError(
                f"{path} is open to group or others (mode {mode:04o}): chmod 600 {path}"
            )
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise AgentTokenError(f"{path}: the token must be visible ASCII without spaces") from None


def _create(path: Path, token: str) -> None:
    """Writes the token to a private temporary file beside `path`, then links it into place:
    the name appears complete or not at all, and never replaces a file (link, like O_EXCL,
    fails on an existing name)."""
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600, O_EXCL
    except OSError as exc:
        raise AgentTokenError(f"cannot create {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(token + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        raise AgentTokenError(f"cannot create {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
