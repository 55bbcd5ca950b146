"""Core: the project file, the ledger, the artifact store, the engine, metering."""
