"""The command that runs one of our modules in a child Python: the services, the TFTP workers,
the engine a UI or the lab starts, `pxetui import` from the lab, the doctor's self-test.

`python -m` puts the directory it was started in first on the import path. Root often runs
`sudo pxetui` from /tmp, a shared project directory or a user's home, so a `pxetui/` or a
`dataclasses.py` a local user left there would be imported, as root, by every child. -P
(Python 3.11) leaves the working directory out: pxetui and the standard library come from where
they are installed (docs/SECURITY.md, "Local users").
"""

from __future__ import annotations

import sys


def python_module(module: str, *args: str) -> list[str]:
    """argv for `python -P -m module args...` with this interpreter."""
    return [sys.executable, "-P", "-m", module, *args]
