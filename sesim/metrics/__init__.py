"""Scores computed by code in this repository: layout/appearance scores for the built-in demo,
Frechet distance and KID on given features, and the metrics of ``sesim evaluate``."""

from .frechet import frechet_distance, kernel_inception_distance

__all__ = ["frechet_distance", "kernel_inception_distance"]
