"""Sources: read raw data and snapshot it into datasets."""
