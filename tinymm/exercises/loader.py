"""Find the learner's stub files and load each one as a fresh module.

The stubs live in ``lessons/exercises/`` of a checkout. The checker looks, in order, in the
folder given with ``--dir``, in ``lessons/exercises`` under the current folder, in the current
folder itself (if you run it from inside ``lessons/exercises``), and next to the installed
package (an editable install from a clone). Each check loads the stub again, in a new module,
so an edit is seen at once and nothing is left over from an earlier run.
"""
import importlib.util
import itertools
import traceback
from pathlib import Path

from ..errors import UserError
from .core import Finding

_fresh = itertools.count()


def find_dir(given=None, any_stub="04_linear.py"):
    """The folder that holds the stubs; a UserError (a usage mistake) if there is none."""
    if given is not None:
        folder = Path(given)
        if not folder.is_dir():
            raise UserError(f"check: --dir {given} is not a folder")
        return folder
    here = Path.cwd()
    candidates = [here / "lessons" / "exercises", here,
                  Path(__file__).resolve().parents[2] / "lessons" / "exercises"]
    for folder in candidates:
        if (folder / any_stub).is_file():
            return folder
    raise UserError("check: cannot find the exercise stubs (lessons/exercises/ of a tinymm clone); "
                     "run from the clone's top folder or give --dir path/to/lessons/exercises")


def load_stub(path):
    """Execute the stub at ``path`` in a new module and return it.

    A stub that cannot even be loaded (a syntax error, an import that fails) is the
    learner's mistake: it becomes a Finding that names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise Finding(f"{path} is missing: restore it from git (git checkout {path.name}) "
                      f"or give --dir the folder that holds the stubs")
    spec = importlib.util.spec_from_file_location(f"tinymm_exercise_{next(_fresh)}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise Finding(f"{path.name} line {err.lineno}: SyntaxError: {err.msg}\n"
                      f"    {(err.text or '').strip()}") from None
    except Exception as err:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == str(path)]
        where = f" (line {frames[-1].lineno}: {frames[-1].line.strip()})" if frames else ""
        raise Finding(f"{path.name} fails when loaded: {type(err).__name__}: {err}{where}") from None
    return module
