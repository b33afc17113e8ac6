"""Scores computed by code in this repository: layout/appearance scores for the built-in tasks,
Frechet distance and KID on given features, and a small realism feature extractor trained only on
real images."""

from .frechet import frechet_distance, kernel_inception_distance

__all__ = ["frechet_distance", "kernel_inception_distance"]
