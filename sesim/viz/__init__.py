"""Pictures: sample grids, self-similarity heat maps, HTML pages."""
