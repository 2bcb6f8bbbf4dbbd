"""The package's front door: every name ``nst_engine.__all__`` promises can be imported from it."""

import subprocess
import sys


def test_every_exported_name_imports_from_the_package() -> None:
    # A fresh interpreter, so that no earlier import has filled the package's namespace already.
    check = "import nst_engine; missing = [n for n in nst_engine.__all__ if not hasattr(nst_engine, n)]; print(missing)"
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout == "[]\n"
