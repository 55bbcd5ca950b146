"""The `boite` command line."""
