"""Training: splits, preprocessing, algorithms, search, evaluation and business value."""
