"""Calls to STS, EIAM and KMS through the official SDK, with one retry policy and one deadline."""
