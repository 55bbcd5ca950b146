"""Lineage: graph queries over the ledger."""
