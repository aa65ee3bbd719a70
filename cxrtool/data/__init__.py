"""ChestX-ray14 metadata, image lookup and loading, splits, datasets, transforms and synthetic data."""
