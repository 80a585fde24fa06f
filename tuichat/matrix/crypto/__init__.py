"""End-to-end encryption beyond what nio does (see nio_extensions.py)."""
