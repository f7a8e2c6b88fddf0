"""Data: corpus reading, text frontend, mel features, splits, datasets."""
