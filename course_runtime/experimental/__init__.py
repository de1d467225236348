"""Ray's experimental utilities that the course uses: tqdm_ray (progress bars from tasks). Mirrors `ray.experimental`."""
