"""The model registry: model versions, aliases and their history, gates, safe model files."""
