"""One module per CLI command (see trainer_backend/__main__.py)."""
