"""The contract: distributions, the ``Backend`` base class, the families table, the configuration
resolver, seeds, errors, the plugin manager and its hook specifications.

The public names are re-exported by :mod:`polysample`; import them from there.
"""
