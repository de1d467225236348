"""One setting moves the course to real Ray: `from course_runtime import ray` gives this runtime by default, and the
real `ray` module when COURSE_BACKEND=ray is set (with RAY_ADDRESS too, it connects to that Ray cluster).

Not a Ray component: the course's switch between the two. The notebooks and scripts use only Ray's public API, so
the same cells run on both.
"""
import os

BACKENDS = ("course", "ray")


def load():
    choice = (os.environ.get("COURSE_BACKEND") or "course").strip().lower()
    if choice == "course":
        import course_runtime
        return course_runtime
    if choice == "ray":
        try:
            import ray
        except ImportError:
            raise ImportError("COURSE_BACKEND=ray is set but Ray is not installed. Install it with "
                              "`pip install -e \".[ray]\"` (or `pip install ray`), or unset COURSE_BACKEND to use "
                              "the course runtime.") from None
        if os.environ.get("RAY_ADDRESS") and not ray.is_initialized():
            # Connect now, so the notebooks' `ray.init(num_cpus=..., ignore_reinit_error=True)` finds Ray
            # running instead of asking a cluster for local resources (which Ray refuses).
            ray.init(address=os.environ["RAY_ADDRESS"])
        return ray
    raise ValueError(f"COURSE_BACKEND={choice!r} is not a backend of this course. Valid values: "
                     f"{', '.join(repr(b) for b in BACKENDS)} (unset means 'course').")
