"""A secret's life (contract section 14): which secret is current, and rotation."""
