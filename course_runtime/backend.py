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
            connect(ray, os.environ["RAY_ADDRESS"])
        # so that `ray.util.multiprocessing.Pool`, `ray.util.scheduling_strategies`, `ray.util.state` and
        # `ray.experimental.tqdm_ray` work as attributes, as on the course runtime
        import ray.experimental.tqdm_ray  # noqa: F401
        import ray.util.multiprocessing  # noqa: F401
        import ray.util.scheduling_strategies  # noqa: F401
        import ray.util.state  # noqa: F401
        return ray
    raise ValueError(f"COURSE_BACKEND={choice!r} is not a backend of this course. Valid values: "
                     f"{', '.join(repr(b) for b in BACKENDS)} (unset means 'course').")


START_A_CLUSTER = ("Start one with `ray start --head --port=6379` (then RAY_ADDRESS=127.0.0.1:6379), or unset "
                   "RAY_ADDRESS to start Ray on this machine.")
SET_THE_TOKEN = ("If the cluster uses token authentication (Ray 2.60 turns it on by default), set RAY_AUTH_MODE=token "
                 "and the cluster's token: RAY_AUTH_TOKEN_PATH=<its token file> or RAY_AUTH_TOKEN=<the token> "
                 "(`ray get-auth-token` on the head node prints it).")


def connect(ray, address):
    """`ray.init(address=...)`, but a clear error within seconds when nothing answers at `address` (Ray itself
    retries for minutes) or when the cluster refuses this driver (Ray says only "Failed to connect")."""
    import socket

    if "://" not in address and address not in ("auto", "local"):
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
        except ValueError:
            raise ValueError(f"RAY_ADDRESS={address!r} is not HOST:PORT. {START_A_CLUSTER}") from None
        except OSError as error:
            raise ConnectionError(f"RAY_ADDRESS={address!r}: no Ray cluster answers there ({error}). "
                                  f"{START_A_CLUSTER}") from None
    try:
        ray.init(address=address)
    except ConnectionError as error:
        raise ConnectionError(f"Could not join the Ray cluster at RAY_ADDRESS={address!r} ({error}). "
                              f"{SET_THE_TOKEN}") from None
