"""runtime_env: what a task or actor needs around it (environment variables, a working directory, modules).

Mirrors `ray/runtime_env/runtime_env.py` (the fields, checked as Ray checks them, merged as Ray merges them) and
Ray's runtime-env agent, which sets a worker up before the task runs. Here every worker shares this machine's
Python, so the fields that install things (pip, conda, containers) are refused with a clear error.
"""
import os
import sys

SUPPORTED = ("env_vars", "working_dir", "py_modules", "config", "excludes")  # config, excludes: nothing to do here
NEEDS_RAY = ("pip", "uv", "conda", "container", "image_uri", "java_jars", "nsight", "mpi")


class RuntimeEnv(dict):
    """`RuntimeEnv(env_vars={...})` is the same as the dict `{"env_vars": {...}}`, as in Ray."""

    def __init__(self, **fields):
        super().__init__({k: v for k, v in fields.items() if v is not None})


def check(runtime_env, job=False):
    """A runtime_env checked as Ray checks it, with local paths made absolute (workers may chdir); None if empty.
    Local directories are for the job's (init's) only, as in Ray; a task or an actor inherits them."""
    if runtime_env is None:
        return None
    if not isinstance(runtime_env, dict):
        raise TypeError(f"The type of keyword 'runtime_env' must be (<class 'dict'>, <class 'NoneType'>), but "
                        f"received type {type(runtime_env)}")
    for key in runtime_env:
        if key in NEEDS_RAY:
            raise NotImplementedError(
                f"runtime_env[{key!r}] is not supported by the course runtime: its workers all use this Python "
                f"environment, so install what you need here. It supports {', '.join(SUPPORTED[:3])} (local "
                f"paths); for {key!r}, use real Ray (COURSE_BACKEND=ray).")
        if key not in SUPPORTED:
            raise ValueError(f"Unknown runtime_env field {key!r}. The course runtime supports "
                             f"{', '.join(SUPPORTED)}; Ray's other fields ({', '.join(NEEDS_RAY)}) need real Ray.")
    env_vars = runtime_env.get("env_vars")
    if env_vars is not None:
        if not isinstance(env_vars, dict):
            raise TypeError(f"runtime_env['env_vars'] must be of type Dict[str, str], got {type(env_vars)}")
        for name, value in env_vars.items():
            if not isinstance(name, str) or not isinstance(value, str):
                bad = name if not isinstance(name, str) else value
                raise TypeError(f"runtime_env['env_vars'] must be of type Dict[str, str], but the "
                                f"{'key' if bad is name else 'value'} {bad!r} is of type {type(bad)}")
    checked = {k: v for k, v in runtime_env.items() if v is not None}
    for field in ("working_dir", "py_modules") if not job else ():
        if field in checked and "://" not in str(checked[field]):  # a remote URI: refused below
            raise ValueError(f"{checked[field]} is not a valid URI. Passing directories or modules to be "
                             f"dynamically uploaded is only supported at the job level (i.e., passed to "
                             f"`ray.init`): give runtime_env={{{field!r}: ...}} to init(), and every task and "
                             f"actor gets it.")
    if "working_dir" in checked:
        checked["working_dir"] = _local_directory(checked["working_dir"], "working_dir")
    if "py_modules" in checked:
        modules = checked["py_modules"]
        if not isinstance(modules, (list, tuple)):
            raise TypeError(f"runtime_env['py_modules'] must be a list of paths or modules, got {type(modules)}")
        checked["py_modules"] = [_module_directory(m) for m in modules]
    return checked or None


def _local_directory(path, field):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"runtime_env[{field!r}] must be a path (str), got {type(path)}")
    path = os.fspath(path)
    if "://" in path:
        raise NotImplementedError(f"runtime_env[{field!r}]={path!r}: the course runtime takes local directories "
                                  f"only; for remote URIs, use real Ray (COURSE_BACKEND=ray).")
    if not os.path.isdir(path):
        raise ValueError(f"runtime_env[{field!r}]: directory {path} must be an existing directory (the course "
                         f"runtime does not take archives such as .zip).")
    return os.path.abspath(path)


def _module_directory(module):
    """A package directory to import from (a module object stands for its package's directory)."""
    if hasattr(module, "__file__") and module.__file__:
        module = os.path.dirname(module.__file__) if os.path.basename(module.__file__) == "__init__.py" \
            else module.__file__
    if isinstance(module, str) and module.endswith(".py") and os.path.isfile(module):
        raise ValueError(f"runtime_env['py_modules']: {module} is a single file; give the directory of a package "
                         f"(a folder with an __init__.py), as Ray does.")
    return _local_directory(module, "py_modules")


def merge(parent, child):
    """Ray's rule for a task inside a job (or inside another task): the child's fields win, except that the two
    env_vars dicts are merged (the child's values win)."""
    if not parent or not child:
        return child or parent
    merged = {**parent, **child}
    if "env_vars" in parent and "env_vars" in child:
        merged["env_vars"] = {**parent["env_vars"], **child["env_vars"]}
    return merged


def enter(runtime_env, env_vars):
    """Set this worker up: runtime_env's variables, then `env_vars` (None removes one), its working directory and
    module paths. Returns what leave() needs to put everything back."""
    runtime_env = runtime_env or {}
    env_vars = {**runtime_env.get("env_vars", {}), **env_vars}
    saved = {name: os.environ.get(name) for name in env_vars}
    _set(env_vars)
    paths = [os.path.dirname(m) for m in runtime_env.get("py_modules", ())]
    cwd = None
    if "working_dir" in runtime_env:
        cwd = os.getcwd()
        os.chdir(runtime_env["working_dir"])
        paths.insert(0, runtime_env["working_dir"])
    sys.path[:0] = paths
    return saved, cwd, paths


def leave(undo):
    """Undo enter(), and forget modules imported from its paths, so that no later task sees them."""
    saved, cwd, paths = undo
    _set(saved)
    if cwd is not None:
        os.chdir(cwd)
    for path in paths:
        if path in sys.path:
            sys.path.remove(path)
        for name, module in list(sys.modules.items()):
            if (getattr(module, "__file__", None) or "").startswith(path + os.sep):
                del sys.modules[name]


def _set(env_vars):
    for name, value in env_vars.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
