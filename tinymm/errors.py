"""The errors tinymm raises when a user makes a mistake (as opposed to a bug in tinymm).

A mistake is something the person running tinymm can fix: a wrong option, a missing file,
a config field with a bad value. tinymm answers it with one line that names the file, field,
option or op and says what to do. The command line (``python -m tinymm``) prints that line
and exits with status 2; any other exception is a bug and keeps its traceback.

Both classes derive from ``ValueError``, so code written before they existed and catching
``ValueError`` still catches them.
"""


class UserError(ValueError):
    """A user's mistake: the message is one line naming the file/field/option/op and the fix."""


class CheckpointError(UserError):
    """A file that cannot be read as a tinymm checkpoint (missing, damaged, or something else)."""


class DeviceError(UserError, RuntimeError):
    """Device 'cuda' was asked for where CuPy or a GPU is missing (also a RuntimeError, as before)."""
