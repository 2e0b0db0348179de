"""The five layers of the conformance suite, cheapest first; each module yields its checks.

``semantics``, ``density``, ``sampler`` and ``gradient`` take one backend and one family;
``agreement`` takes two backends, one family and one grid. :func:`..runner.generate_checks`
calls them in that order.
"""
