"""A secret's life (contract section 14): which secret is current, and rotation, one safe step at
a time. `current` and `plan` are pure; `observed` keeps what the listing cannot say in the
idempotency store; `rotate` takes a planned step against EIAM."""
