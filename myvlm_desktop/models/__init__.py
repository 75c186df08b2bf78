"""Where model weights live: the registry, lookup on disk, downloads with progress, clear offline errors."""
