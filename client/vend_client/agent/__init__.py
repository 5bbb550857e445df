"""`vend-client agent`: the caching client on localhost, for callers in any language (contract
section 13). Each module has one job: `app` the HTTP API (WSGI), `auth` the agent's own token,
`tokens` the M2M access tokens (the OAuth exchange and its cache), `errors` what a failure is
answered as, `logs` the JSON lines, `server` waitress, `command` the command that wires them."""
