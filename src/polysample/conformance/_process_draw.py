"""The other process of the semantics layer's ``seeds_process`` rule.

Run as ``python -m polysample.conformance._process_draw``: a loop that reads requests from
stdin and answers on stdout, each a pickle preceded by its length (8 bytes, little-endian). A
request ``(target, family, sample_shape, seed, methods)`` draws the family's example
distribution (as the ``seeds`` rule does) with that seed by each method; the answer is
``("ok", {method: values})``, or ``("error", loaded, message)`` where ``loaded`` says whether
the target was unpickled and its distribution made (a backend that cannot be rebuilt here is
not judged; a draw that fails is). The loop ends at the end of its input (its parent closed
the pipe, or exited).
"""

from __future__ import annotations

import pickle
import sys
import traceback
from typing import Any, BinaryIO


def read_message(stream: BinaryIO) -> Any:
    """The next length-prefixed pickle of ``stream``; EOFError at its end."""
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    size = int.from_bytes(head, "little")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def write_message(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message)
    stream.write(len(data).to_bytes(8, "little") + data)
    stream.flush()


def serve(request: bytes) -> Any:
    loaded = False
    try:
        target, family, shape, seed, methods = pickle.loads(request)
        from .grids import example_params
        from .runner import make

        d = make(family, example_params(family, (2,)), target)
        loaded = True
        return ("ok", {m: getattr(d, m)(shape, seed=seed).detach().cpu() for m in methods})
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which judges it
        tail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return ("error", loaded, tail)


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library's prints must not corrupt the answers
    while True:
        try:
            request = read_message(stdin)
        except EOFError:
            return
        write_message(stdout, serve(request))


if __name__ == "__main__":
    main()
