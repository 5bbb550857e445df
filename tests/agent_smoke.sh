#!/bin/sh
# The agent as a program in another language meets it: plain HTTP GETs with curl, from POSIX sh.
# One line per check ("ok - ..." or "not ok - ..."); exits 1 at the first check that fails.
#
# Needs: AGENT_URL (http://127.0.0.1:2773), AGENT_TOKEN, INSTANCE, APPLICATION, SECRET_ID and
# EXPECT_SECRET (what /v1/secret must answer). Optional: DENIED_APPLICATION and DENIED_SECRET_ID
# (a secret the agent's identity may not read: the service's 403 must reach the caller), and
# TOKENS=1 (the agent has a token endpoint: /v1/token, with SCOPE if given, must answer an access
# token without the secret in it).
set -eu

: "${AGENT_URL:?}" "${AGENT_TOKEN:?}" "${INSTANCE:?}" "${APPLICATION:?}" "${SECRET_ID:?}"
: "${EXPECT_SECRET:?}"

body=$(mktemp)
trap 'rm -f "$body"' EXIT
query="instance_id=$INSTANCE&application_id=$APPLICATION&secret_id=$SECRET_ID"

# ask EXPECTED_STATUS DESCRIPTION [CURL ARGS...] URL: the answer's body is left in $body.
ask() {
    expected=$1
    what=$2
    shift 2
    status=$(curl -sS -o "$body" -w '%{http_code}' "$@")
    if [ "$status" != "$expected" ]; then
        echo "not ok - $what: status $status, not $expected: $(cat "$body")"
        exit 1
    fi
}

# says TEXT DESCRIPTION: the last answer's body holds TEXT.
says() {
    if ! grep -qF -- "$1" "$body"; then
        echo "not ok - $2: the answer lacks $1: $(cat "$body")"
        exit 1
    fi
    echo "ok - $2"
}

# never TEXT DESCRIPTION: the last answer's body does not hold TEXT.
never() {
    if grep -qF -- "$1" "$body"; then
        echo "not ok - $2"
        exit 1
    fi
    echo "ok - $2"
}

ask 200 "health without a token" "$AGENT_URL/v1/health"
says '"status":"ok"' "health without a token"

ask 401 "no token header" "$AGENT_URL/v1/secret?$query"
says '"code":"Unauthenticated"' "no token header: 401"
never "$EXPECT_SECRET" "no token header: no secret"

ask 401 "a wrong token" -H "X-Vend-Agent-Token: not-$AGENT_TOKEN" "$AGENT_URL/v1/secret?$query"
says '"code":"Unauthenticated"' "a wrong token: 401"

ask 400 "X-Forwarded-For" -H "X-Vend-Agent-Token: $AGENT_TOKEN" \
    -H "X-Forwarded-For: 203.0.113.7" "$AGENT_URL/v1/secret?$query"
says '"code":"ForwardedRequest"' "X-Forwarded-For: 400"
never "$EXPECT_SECRET" "X-Forwarded-For: no secret"

ask 200 "the secret" -H "X-Vend-Agent-Token: $AGENT_TOKEN" "$AGENT_URL/v1/secret?$query"
says "\"client_secret\":\"$EXPECT_SECRET\"" "the secret: 200 with client_secret"
says "\"secret_id\":\"$SECRET_ID\"" "the secret: its secret_id"
says '"client_id":' "the secret: its client_id"

ask 405 "POST" -X POST -H "X-Vend-Agent-Token: $AGENT_TOKEN" "$AGENT_URL/v1/secret?$query"
says '"code":"MethodNotAllowed"' "POST: 405"

ask 404 "an unknown path" -H "X-Vend-Agent-Token: $AGENT_TOKEN" "$AGENT_URL/v1/nowhere"
says '"code":"NotFound"' "an unknown path: 404"

ask 400 "a bad ID" -H "X-Vend-Agent-Token: $AGENT_TOKEN" \
    "$AGENT_URL/v1/secret?instance_id=$INSTANCE&application_id=$APPLICATION&secret_id=a*"
says '"code":"InvalidParameter"' "a bad ID: 400"

if [ -n "${DENIED_SECRET_ID:-}" ]; then
    denied="instance_id=$INSTANCE&application_id=${DENIED_APPLICATION:?}&secret_id=$DENIED_SECRET_ID"
    ask 403 "the service's 403" -H "X-Vend-Agent-Token: $AGENT_TOKEN" "$AGENT_URL/v1/secret?$denied"
    says '"code":"AccessDenied"' "the service's 403 kept, with its code"
    says '"request_id":' "the service's 403 kept, with its request id"
fi

if [ "${TOKENS:-}" = 1 ]; then
    ask 200 "a token" -G --data-urlencode "scope=${SCOPE:-}" \
        -H "X-Vend-Agent-Token: $AGENT_TOKEN" "$AGENT_URL/v1/token?$query"
    says '"access_token":"' "a token: 200 with an access token"
    says '"token_type":"Bearer"' "a token: Bearer"
    says '"expires_at":' "a token: its expiry"
    never "$EXPECT_SECRET" "a token: the secret is not in it"
fi
