"""The rules of the whole run, tests/ and client/tests/ alike (pyproject puts tests/ on the
path): no silent skip under CI."""

pytest_plugins = ("skip_policy",)
