"""A real multi-node Ray cluster on this machine, for the tests that run the course on a cluster.

    with LocalRayCluster() as cluster:           # a head and one more node, each its own raylet
        env = cluster.client_env()               # RAY_ADDRESS and the token settings a driver needs
        subprocess.run([sys.executable, "script.py"], env={**os.environ, **env})

Or from a shell (to try the notebooks on a cluster by hand):

    python tests/ray_cluster.py start            # prints the `export ...` lines a driver needs; leaves it running
    python tests/ray_cluster.py stop DIR         # stops the cluster whose folder `start` printed

How it is set up (what Ray 2.60 needs, found by trying):
- Every node is started with `ray start --node-ip-address=127.0.0.1`, the dashboard on 127.0.0.1, and drivers
  connect to `127.0.0.1:PORT`. Ray 2.60 on Linux replaces a loopback node address with the machine's own address
  (`resolve_ip_for_localhost` in `ray start` and `ray.init`), so the nodes register under that address; its gRPC
  servers (GCS, raylets) listen on every interface whatever the node address, and no option changes that. Traffic
  to the machine's own address stays on the machine. (Tried: a second node on 127.0.0.2 never finished starting;
  `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` keeps 127.0.0.1 but then `ray start --address` refuses to start.)
- Each node's ports are picked free here, so that nothing clashes with another Ray on the same machine (Ray's
  defaults, 6379, 8265, 10001, 52365, would).
- Token authentication: `ray start --head` turns it on only when it finds a token (by default `~/.ray/auth_token`,
  which a first local `ray.init()` writes), but `ray start --address` does not look for one, and is then refused
  ("Authentication token is missing or incorrect"). So every process here gets `RAY_AUTH_MODE=token` and
  `RAY_AUTH_TOKEN_PATH` pointing at a token of this cluster's own (the user's `~/.ray/auth_token` is never touched).
  A driver needs the same two settings (or `RAY_AUTH_TOKEN=<the token>`) besides `RAY_ADDRESS`.
- `RAY_TMPDIR` points every process at this cluster's own folder: its session logs, sockets and the
  `ray_current_cluster` file (which a bare `ray.init()` elsewhere on the machine would otherwise find and join).
- Stopping never uses `ray stop`, which stops every Ray on the machine: it ends the processes started with this
  cluster's `RAY_TMPDIR` or holding a file of its folder open (raylets, GCS, dashboard, agents, workers: the
  agents outlive a raylet that is stopped), SIGTERM first, then SIGKILL.
"""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.path.dirname(sys.executable)
RAY = os.path.join(BIN, "ray")

# The cluster the tests use: a small head (where the drivers connect) and a "GPU node" with what the notebooks ask of
# `init(num_cpus=2, num_gpus=2, resources={"licence": 1})`: 2 CPUs, 2 logical GPUs and a licence. (With one CPU on
# the GPU node, notebook 5's GPU actors, which hold a CPU each, would wait for each other forever.)
HEAD = {"num_cpus": 1, "resources": {"head": 1}}
WORKERS = [{"num_cpus": 2, "num_gpus": 2, "resources": {"licence": 1, "worker": 1}}]
OBJECT_STORE_BYTES = 200 * 2**20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _belongs_to(pid, root):
    """Whether process `pid` was started for the cluster in folder `root`: RAY_TMPDIR=root in its environment, or a
    file under root open (its log files). Ray renames its Python processes (`ray::IDLE`, `ray::DashboardAgent`),
    which overwrites their command line and environment, but they keep their logs open in the session folder."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            if f"RAY_TMPDIR={root}".encode() in f.read().split(b"\0"):
                return True
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(root + os.sep):
                    return True
            except OSError:
                continue
    except OSError:
        pass
    return False


def processes_of(root):
    """Pids of the living processes of the cluster in folder `root` (and of drivers started with its client_env)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X") and _belongs_to(pid, root):
            found.append(int(pid))
    return found


class ClusterStartError(RuntimeError):
    pass


class LocalRayCluster:
    def __init__(self, head=HEAD, workers=WORKERS, object_store_bytes=OBJECT_STORE_BYTES, dashboard=True):
        self.head, self.workers = head, list(workers)
        self.object_store_bytes, self.dashboard = object_store_bytes, dashboard
        self.root = None
        self.address = self.dashboard_url = None

    # --- the environment of every process of this cluster, and of a driver that connects to it
    def _cluster_env(self):
        return {"RAY_TMPDIR": self.root, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": self.token_path,
                "RAY_USAGE_STATS_ENABLED": "0"}

    def client_env(self):
        """What a driver sets to use this cluster: `from course_runtime import ray` then connects to it."""
        return {**self._cluster_env(), "RAY_ADDRESS": self.address, "COURSE_BACKEND": "ray"}

    @property
    def token(self):
        with open(self.token_path) as f:
            return f.read().strip()

    def _ray_start(self, spec, ip, *extra, env=None):
        args = [RAY, "start", f"--node-ip-address={ip}", f"--num-cpus={spec.get('num_cpus', 1)}",
                f"--num-gpus={spec.get('num_gpus', 0)}", f"--resources={json.dumps(spec.get('resources', {}))}",
                f"--object-store-memory={self.object_store_bytes}", "--disable-usage-stats",
                f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
                f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}", *extra]
        result = subprocess.run(args, env={**os.environ, **self._cluster_env(), **(env or {})}, capture_output=True, text=True,
                                timeout=180)
        if result.returncode != 0:
            raise ClusterStartError(f"`{' '.join(args)}` failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def start(self, timeout=120):
        # A short path: Ray's socket paths live under it and must stay under 107 characters.
        self.root = tempfile.mkdtemp(prefix="raycl-", dir="/tmp")
        self.token_path = os.path.join(self.root, "auth_token")
        with open(self.token_path, "w") as f:
            f.write(secrets.token_hex(32))
        os.chmod(self.token_path, 0o600)
        port = free_port()
        try:
            dashboard_port = free_port()
            extra = ["--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}", "--include-dashboard=true"] \
                if self.dashboard else ["--include-dashboard=false"]
            self._ray_start(self.head, "127.0.0.1", "--head", f"--port={port}", f"--temp-dir={self.root}",
                            f"--ray-client-server-port={free_port()}", *extra)
            self.address = f"127.0.0.1:{port}"
            if self.dashboard:
                self.dashboard_url = f"http://127.0.0.1:{dashboard_port}"
            for spec in self.workers:
                self._ray_start(spec, "127.0.0.1", f"--address={self.address}")
            self.wait_for_nodes(1 + len(self.workers), timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_nodes(self, count, timeout=60):
        """Wait until `count` nodes are alive, asked of the GCS by a short driver."""
        probe = ("import ray, time, sys\n"
                 "ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False)\n"
                 "deadline = time.monotonic() + float(sys.argv[2])\n"
                 "while sum(n['Alive'] for n in ray.nodes()) < int(sys.argv[3]) and time.monotonic() < deadline:\n"
                 "    time.sleep(0.2)\n"
                 "print(sum(n['Alive'] for n in ray.nodes()))\n")
        result = subprocess.run([sys.executable, "-c", probe, self.address, str(timeout), str(count)],
                                env={**os.environ, **self._cluster_env()}, capture_output=True, text=True,
                                timeout=timeout + 60)
        if result.returncode != 0 or result.stdout.strip() != str(count):
            raise ClusterStartError(f"{count} nodes expected alive, got {result.stdout.strip()!r}:\n{result.stderr}")

    def pids(self):
        return processes_of(self.root) if self.root else []

    def stop(self, grace_s=10.0):
        """End every process of this cluster (and only those); then delete its folder. Returns the pids left."""
        if not self.root:
            return []
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + wait
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.2)
        left = self.pids()
        if not left:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        return left

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main():
    if sys.argv[1:2] == ["start"]:
        cluster = LocalRayCluster().start()
        for name, value in cluster.client_env().items():
            print(f"export {name}={value}")
        print(f"# dashboard: {cluster.dashboard_url}; stop with: {sys.executable} {__file__} stop {cluster.root}")
    elif sys.argv[1:2] == ["stop"] and len(sys.argv) == 3:
        cluster = LocalRayCluster()
        cluster.root = os.path.abspath(sys.argv[2])
        left = cluster.stop()
        sys.exit(f"still running: {left}" if left else 0)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
