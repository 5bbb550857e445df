"""Alibaba Cloud RAM policy engine: parse a policy once, evaluate it per request. No I/O."""

from .evaluate import Decision, Result, evaluate, evaluate_session
from .model import (
    Effect,
    Policy,
    PolicyError,
    PolicyKind,
    Principal,
    RequestContext,
    Statement,
    parse_policy,
)

__all__ = [
    "Decision",
    "Effect",
    "Policy",
    "PolicyError",
    "PolicyKind",
    "Principal",
    "RequestContext",
    "Result",
    "Statement",
    "evaluate",
    "evaluate_session",
    "parse_policy",
]
