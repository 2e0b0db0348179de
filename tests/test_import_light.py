"""``import polysample`` stays light: no TensorFlow, JAX, SciPy, matplotlib, nor torch's Dynamo
(``torch._dynamo``, torch.compile's tracer: 2 s to import, loaded on the first compiled draw).

Checked in a fresh interpreter (this test process may have imported them already). Listing the
backends instantiates every backend, which must still not import TensorFlow or JAX: heavy
libraries are imported on first draw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = ("tensorflow", "jax", "scipy", "matplotlib", "torch._dynamo")

SCRIPT = """
import json, sys, warnings
warnings.simplefilter("ignore")
import polysample
after_import = [m for m in {heavy} if m in sys.modules]
names = [b.name for b in polysample.backends()]
after_backends = [m for m in {heavy} if m in sys.modules]
print(json.dumps({{"import": after_import, "backends": after_backends, "names": names}}))
"""


def test_import_and_backends_listing_do_not_import_heavy_libraries() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYSAMPLE_")}
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(heavy=HEAVY)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["import"] == [], f"import polysample imported {result['import']}"
    leaked = [m for m in result["backends"] if m in ("tensorflow", "jax")]
    assert leaked == [], f"polysample.backends() imported {leaked}"
    assert "torch" in result["names"]
