"""MyVLM Desktop: a local-first photo library that learns your concepts and talks about them by name."""

__version__ = "0.1.0"
