"""Ray's experimental utilities that the course uses: tqdm_ray (progress bars from tasks). Mirrors `ray.experimental`."""
from . import tqdm_ray

__all__ = ["tqdm_ray"]
