"""Alembic migrations of the ledger schema (run by :mod:`boite.core.ledger`)."""
