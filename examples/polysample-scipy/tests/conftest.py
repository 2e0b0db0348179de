# polysample's pytest plugin: the polysample_check fixture and the polysample_* ini options
# (pyproject.toml). It is opt-in: a test suite loads it by name.
pytest_plugins = ["polysample.conformance.pytest_plugin"]
