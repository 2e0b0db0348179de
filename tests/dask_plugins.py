"""A backend for the Dask tests that hangs once, so a test can kill the worker running it.

Loaded by Dask workers through ``POLYSAMPLE_PLUGINS=dask_plugins`` (the tests directory is on
their ``sys.path``). ``hang_once`` is the numpy backend, except that where
``POLYSAMPLE_TEST_HANG_FILE`` names a file that does not exist yet, the first ``sample()``
creates it, writes its process id there and sleeps (until the test kills that process). Every
later draw, in any process, finds the file and draws normally: Dask's rerun of the unit
completes, with the values a serial run gives.
"""

from __future__ import annotations

import os
import time

import polysample
from polysample.backends.numpy_backend import NumpyBackend


class HangOnceBackend(NumpyBackend):
    def sample(self, family, params, sample_shape, *, seed=None):  # type: ignore[override]
        path = os.environ.get("POLYSAMPLE_TEST_HANG_FILE")
        if path and not os.path.exists(path):
            try:
                fd = os.open(path + ".tmp", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.replace(path + ".tmp", path)  # the test sees the file with the pid in it
                time.sleep(60)  # the test kills this process long before
        return super().sample(family, params, sample_shape, seed=seed)


@polysample.hookimpl
def polysample_register_backends(register):  # type: ignore[no-untyped-def]
    register("hang_once", HangOnceBackend)
