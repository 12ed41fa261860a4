"""A strict stand-in for CuPy 13.6, for testing tinymm's GPU path on a machine without a GPU.

It is importable as ``cupy`` only when a test run asks for it: ``TINYMM_STRICT_DEVICE=1``
makes ``tests/conftest.py`` put ``tests/strict_device`` first on the import path (and on
PYTHONPATH, so the lessons and commands the tests start see it too). Without that variable the
suite uses the real CuPy where one is installed.

The arrays live in ordinary memory (NumPy underneath), but the stand-in refuses what CuPy
refuses (see ``_core.py``) and counts every read back to the host and every copy to the
device (``_strict.py``). It is not fast and it computes nothing CuPy would not: it exists so
that code that would fail on a GPU fails here first.
"""
import sys

from . import _namespace, _strict
from ._names import CUPY_VERSION as __version__

globals().update(_namespace.build())
_namespace._module = sys.modules[__name__]

from . import cuda  # noqa: E402  (needs the names above)

linalg = _namespace._linalg_module()
_namespace.MODULES.update({"numpy": sys.modules[__name__], "numpy.linalg": linalg})
