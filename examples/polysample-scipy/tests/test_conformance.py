"""polysample's conformance suite on the scipy backend: one test per check, ids are check ids
(``pytest -k "scipy-Gamma-typical"``); the expected failures of known_failures.toml are strict
xfails."""


def test_polysample_conformance(polysample_check):
    polysample_check()
