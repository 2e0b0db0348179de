"""The other process of the semantics layer's ``seeds_process`` rule.

Run as ``python -m polysample.conformance._process_draw``: reads a pickled ``(target, family,
sample_shape, seed, methods)`` from stdin, draws the family's example distribution (as the
``seeds`` rule does) with that seed by each method, and writes the pickled values to stdout.
``LOADED`` goes to stderr once the target is unpickled and the distribution made, so the
parent can tell a backend that cannot be rebuilt here (not judged) from a draw that fails.
"""

from __future__ import annotations

import pickle
import sys


def main() -> None:
    target, family, shape, seed, methods = pickle.loads(sys.stdin.buffer.read())
    from .grids import example_params
    from .runner import make

    d = make(family, example_params(family, (2,)), target)
    print("LOADED", file=sys.stderr, flush=True)
    out = {m: getattr(d, m)(shape, seed=seed).detach().cpu() for m in methods}
    sys.stdout.buffer.write(pickle.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
