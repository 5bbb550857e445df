"""Mutation testing of the security core with mutmut (`make mutate`): `stage` lays out the tree
mutmut runs in, `score` summarises its results per module."""
