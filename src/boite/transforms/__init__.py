"""Transforms: parse, plan and run SQL and Python transforms; data checks."""
