"""Built-in backends. Each module registers itself through the public plugin hook."""
