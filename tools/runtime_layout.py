"""Measure course_runtime's layout: lines of code per module and class, and the imports between its modules.

Used by tests/test_runtime_layout.py (which enforces the figures of issue 12) and by README's reading-order table.
A line of code is a line that holds code: blank lines, comments and docstrings do not count.
"""
import ast
import io
import os
import re
import tokenize

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "course_runtime")
# Not part of the core: course helpers, the CLI, Ray's utilities (util, experimental), and the fast paths (read
# after the plain path).
NOT_CORE = {"doctor", "viz", "state", "checks", "__main__", "fast_paths", "experimental"}


def modules():
    """{dotted name relative to the package ('' for __init__, 'util.queue'): path}."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, ".")
                found["" if rel == "__init__" else rel.removesuffix(".__init__")] = path
    return found


def is_core(name):
    return name.split(".")[0] not in NOT_CORE and not name.startswith("util")


def _docstring_lines(tree):
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def code_lines(source):
    """The numbers of the lines that hold code (not blank, not only a comment, not part of a docstring)."""
    docstrings = _docstring_lines(ast.parse(source))
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                          tokenize.ENDMARKER):
            continue
        lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return lines


def loc(path):
    with open(path) as f:
        return len(code_lines(f.read()))


def class_locs(path):
    """{class name: lines of code} for the top-level classes of a module."""
    with open(path) as f:
        source = f.read()
    lines, tree = code_lines(source), ast.parse(source)
    return {node.name: len([n for n in lines if node.lineno <= n <= node.end_lineno])
            for node in tree.body if isinstance(node, ast.ClassDef)}


def imports(name, path):
    """The package modules that module `name` imports, anywhere in it (inside functions too)."""
    with open(path) as f:
        tree = ast.parse(f.read())
    package = name.split(".")[:-1] if name else []
    if os.path.basename(path) == "__init__.py":
        package = name.split(".") if name else []
    known, found = modules(), set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
            elif node.module and node.module.split(".")[0] == "course_runtime":
                base, node_module = [], node.module.split(".", 1)[1] if "." in node.module else ""
                targets.append(node_module)
                targets += [f"{node_module}.{a.name}".lstrip(".") for a in node.names]
                base = None
            else:
                base = None
            if base is not None:
                mod = ".".join(base + ([node.module] if node.module else []))
                targets.append(mod)
                targets += [f"{mod}.{a.name}".lstrip(".") for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "course_runtime":
                    targets.append(alias.name.split(".", 1)[1] if "." in alias.name else "")
        found.update(t for t in targets if t in known and t != name)
    found.discard("")  # the package itself: what `from . import x` names is counted as x
    return found


def import_graph():
    return {name: imports(name, path) for name, path in modules().items()}


def cycles(graph):
    """Every import cycle, as a list of module names (empty when there is none)."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def figures():
    mods = modules()
    per_module = {name: loc(path) for name, path in mods.items()}
    classes = {f"{name}.{cls}": n for name, path in mods.items() if is_core(name)
               for cls, n in class_locs(path).items()}
    core = sum(n for name, n in per_module.items() if is_core(name))
    return {"core": core, "modules": per_module, "classes": classes}


# README's "How it works, in reading order": the modules in the order a task meets them, what each does.
READING_ORDER = [
    ("remote_function", "`f.remote(...)`: check the call against `f`'s signature, build the task's spec",
     "`ray.remote_function`"),
    ("task_spec", "the spec; `pack_arguments` says what travels inline, what is stored first, what is a ref",
     "TaskSpecification"),
    ("driver", "the driver's API: submit, `put` (allocate, write, seal), `get`/`wait` that sleep until ready",
     "core worker (driver)"),
    ("raylet", "the IO thread, the table of message handlers, submit -> schedule -> dispatch -> done, dead workers",
     "raylet node manager"),
    ("owner", "task and object tables, reference counts, dependencies, retries (no IO)",
     "core worker: task manager, reference counter"),
    ("scheduler", "resource ledger in 1/10,000 units, GPU packing, one ready queue per request shape, stuck tasks",
     "cluster resource scheduler"),
    ("worker_pool", "start workers, write to their pipes without blocking, size the pool, retire idle workers",
     "raylet worker pool"),
    ("protocol", "the wire format, and ONE table of every message as a named record", "gRPC `*.proto`"),
    ("worker", "serve the pipe; one run path for tasks, actor calls, threaded and async ones; cancel signals",
     "worker process, execute_task"),
    ("task_context", "the API inside a task: each call becomes a message to the driver", "core worker (worker)"),
    ("plasma", "shared-memory segments: allocate, write, seal, abandon, free (memfd on Linux)", "plasma store"),
    ("serialization", "pickle protocol 5, large buffers out of band, zero-copy reads", "`ray._private.serialization`"),
    ("object_ref", "`ObjectRef`, and every process's count of its live refs", "`ray.ObjectRef`"),
    ("gcs", "actors: creation, the queue of calls, names, restarts, deaths", "GCS actor manager"),
    ("wait_manager", "workers blocked in get, wait or a generator's next: answered when they can be; CPUs lent",
     "raylet wait manager"),
    ("object_ref_generator", "what a generator task returns: each `next()` takes the next yielded item's ref",
     "`ray.ObjectRefGenerator`"),
    ("placement_groups", "bundles reserved whole or not at all; the resources Ray names `CPU_group_<id>`",
     "GCS placement group manager"),
    ("runtime_env", "`runtime_env`: check it, merge the job's with a task's, set a worker up and undo it",
     "`ray.runtime_env`, runtime-env agent"),
    ("session", "which runtime this process talks to: the driver's or a task's", "global worker"),
    ("api", "the public functions: argument checks only", "`ray/_private/worker.py`"),
    ("fast_paths", "the speed tricks, behind named hooks; `COURSE_RUNTIME_FAST_PATHS=0` turns them off", "(none)"),
]


def readme_table():
    counts = figures()["modules"]
    lines = ["| module | what it does | in Ray | lines of code |", "|---|---|---|---|"]
    for name, what, ray_part in READING_ORDER:
        lines.append(f"| `{name}.py` | {what} | {ray_part} | {counts[name]} |")
    return "\n".join(lines)


README = os.path.join(os.path.dirname(PACKAGE), "README.md")
TABLE_MARK = "| module | what it does | in Ray | lines of code |"
SIZES = re.compile(r"about [\d,]+ lines from submit to get, [\d,]+ of them code; [\d,]+ more")


def readme_sizes():
    """README's sizes of the package, to the nearest hundred: the core's lines (and lines of code), then the rest."""
    core, rest = 0, 0
    for name, path in modules().items():
        with open(path) as f:
            lines = sum(1 for _ in f)
        core, rest = (core + lines, rest) if is_core(name) else (core, rest + lines)
    return f"about {round(core, -2):,} lines from submit to get, {round(figures()['core'], -2):,} of them code; " \
           f"{round(rest, -2):,} more"


def update_readme():
    """Write the measured table into README.md, in place of the one there (or of READING_ORDER_TABLE)."""
    with open(README) as f:
        text = f.read()
    if TABLE_MARK in text:
        start = text.index(TABLE_MARK)
        end = text.index("\n\n", start)
    else:
        start = text.index("READING_ORDER_TABLE")
        end = start + len("READING_ORDER_TABLE")
    text = text[:start] + readme_table() + text[end:]
    with open(README, "w") as f:
        f.write(SIZES.sub(readme_sizes(), text))


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["--readme"]:
        update_readme()
        print(readme_table())
        sys.exit()
    result = figures()
    for name, n in sorted(result["modules"].items(), key=lambda kv: -kv[1]):
        print(f"{n:5d}  {name or '__init__'}{'' if is_core(name) else '  (not core)'}")
    print(f"core: {result['core']}")
    print("largest classes:", sorted(result["classes"].items(), key=lambda kv: -kv[1])[:5])
    print("cycles:", cycles(import_graph()))
