#!/usr/bin/env python3
"""Set up and run the course with one command (needs only Python 3.10+).

    python3 course.py open     # create .venv, install the course, open JupyterLab on notebooks/
    python3 course.py test     # create .venv, install the test tools, run the whole test suite
    python3 course.py student DIR   # write a copy of the course without the exercise solutions

Both create a virtual environment in .venv the first time and reuse it afterwards.
Extra arguments after `test` go to pytest (e.g. `python3 course.py test -k objects`).
"""
import os
import subprocess
import sys
import venv

ROOT = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(ROOT, ".venv")
PYTHON = os.path.join(VENV, "Scripts" if os.name == "nt" else "bin", "python")


def setup(extra):
    if sys.version_info < (3, 10):
        sys.exit(f"The course needs Python 3.10 or newer; this is {sys.version.split()[0]}.")
    if not os.path.exists(PYTHON):
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        try:
            venv.create(VENV, with_pip=True)
        except Exception as error:  # Debian/Ubuntu ship venv's pip support separately
            sys.exit(f"Could not create a virtual environment ({error}). On Debian/Ubuntu: "
                     f"apt install python3-venv, then run this command again.")
    marker = os.path.join(VENV, f".installed-{extra}")
    stamp = str(os.path.getmtime(os.path.join(ROOT, "pyproject.toml")))
    if not os.path.exists(marker) or open(marker).read() != stamp:
        print(f"Installing the course runtime and its [{extra}] tools ...", flush=True)
        subprocess.run([PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([PYTHON, "-m", "pip", "install", "-q", "-e", f"{ROOT}[{extra}]"], check=True)
        with open(marker, "w") as f:
            f.write(stamp)


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "open":
        setup("course")
        os.chdir(ROOT)
        os.execv(PYTHON, [PYTHON, "-m", "jupyter", "lab", "notebooks", *sys.argv[2:]])
    elif command == "test":
        setup("test")
        os.chdir(ROOT)
        result = subprocess.run([PYTHON, "-m", "pytest", "tests", *sys.argv[2:]])
        sys.exit(result.returncode)
    elif command == "student":
        setup("course")
        os.execv(PYTHON, [PYTHON, os.path.join(ROOT, "tools", "notebooks.py"), "student", *sys.argv[2:]])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
