"""Authentication (contract section 3): who is calling, from an `Authorization` value."""
