"""`vend-client agent` once its options are parsed (cli.py): the agent's token, the cache, the
token endpoint and the server, configured from the flags and the VEND_* environment as the
other caller commands are."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os

from ..exit_status import ExitStatus, Failure
from .app import AgentApp
from .auth import AgentTokenError, NoAgentToken, agent_token
from .logs import log_json_to_stderr
from .server import serve
from .tokens import AUTH_METHODS, TokenCache, TokenEndpoint

__all__ = ["run_agent"]

log = logging.getLogger("vend_client.agent")


def run_agent(args: argparse.Namespace) -> int:
    """Runs the agent until SIGTERM or Ctrl-C; the service options are resolved already."""
    from ..cli import caching_client  # noqa: PLC0415 - cli imports this module lazily

    try:
        token = agent_token(os.environ.get("VEND_AGENT_TOKEN"), args.token_file)
    except NoAgentToken as exc:
        raise Failure(ExitStatus.USAGE, str(exc)) from None
    except AgentTokenError as exc:
        raise Failure(ExitStatus.FILE, str(exc)) from None
    if args.threads < 1 or args.max_connections < 1:
        raise Failure(ExitStatus.USAGE, "--threads and --max-connections must be at least 1")
    endpoint = _token_endpoint(args)
    log_json_to_stderr(logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    secrets = caching_client(args)
    tokens = TokenCache(secrets, endpoint) if endpoint is not None else None
    app = AgentApp(
        secrets=secrets, tokens=tokens, token=token, url=args.url, timeout_s=args.timeout
    )

    def listening(urls: list[str]) -> None:
        fields = {
            "event": "listening",
            "urls": urls,
            "service": args.url,
            "token_endpoint": endpoint.template if endpoint is not None else None,
        }
        log.info("listening", extra={"fields": fields})
        if not _loopback(args.host):
            log.warning(
                "not loopback",
                extra={
                    "fields": {
                        "event": "exposed",
                        "message": f"listening on {args.host}: callers beyond this host can "
                        "reach the agent; only its token keeps them out",
                    }
                },
            )

    try:
        serve(
            app,
            host=args.host,
            port=args.port,
            threads=args.threads,
            connection_limit=args.max_connections,
            on_listening=listening,
        )
    except OSError as exc:
        raise Failure(
            ExitStatus.PORT_IN_USE,
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
        ) from None
    finally:
        secrets.close()
    log.info("stopped", extra={"fields": {"event": "stopped"}})
    return 0


def _token_endpoint(args: argparse.Namespace) -> TokenEndpoint | None:
    template = args.token_endpoint or os.environ.get("VEND_TOKEN_ENDPOINT") or None
    method = args.token_auth_method or os.environ.get("VEND_TOKEN_AUTH_METHOD") or AUTH_METHODS[0]
    if template is None:
        return None
    try:
        return TokenEndpoint(template, auth_method=method, timeout_s=args.timeout)
    except ValueError as exc:
        raise Failure(ExitStatus.USAGE, f"--token-endpoint: {exc}") from None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
