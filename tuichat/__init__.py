"""tuichat: a terminal Matrix client whose end-to-end encryption simply works."""

__version__ = "0.1.0"
