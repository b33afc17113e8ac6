"""``sesim view``: a local web page to look inside a translation.

Point at a spot of an input image and see its self-similarity map (what the structure loss's
features call "the same kind of place") in the input and in each run's translation, layer by
layer and step by step, with the per-query structure-loss value and the loss's error map.

- :mod:`.runs`: a run folder opened for viewing (method, generators per step, sample snapshots);
- :mod:`.inputs`: the images shown in the strip;
- :mod:`.maps`: which structure loss draws the maps of a run, and the map computations;
- :mod:`.session`: the cached, thread-safe answers the page asks for;
- :mod:`.server`: the HTTP server (stdlib, 127.0.0.1 by default) and ``static/``, the page.

Only :mod:`sesim.cli` imports this package.
"""
