"""Canonical dataset schema, the on-disk store, sources and neighbour lists."""
