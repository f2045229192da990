"""A one-node SLURM cluster on this machine, for `make test-slurm` (never part of `make test`).

Debian's `slurm-wlm` (22.05) and `munge` packages, installed with apt-get when missing (needs root). The
configuration lives in a temporary directory and is passed by SLURM_CONF, so nothing under /etc/slurm changes:
slurmctld and slurmd run as root with proctrack/linuxproc and task/none (no cgroups needed in a container),
select/cons_tres, one node with this machine's CPUs and memory, one partition; `cred_expire=20` shortens the wait
before a requeued job may start again (SLURM's default: 120 s). `stop()` shuts down every daemon it
started and checks they are gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List

PACKAGES = ("slurm-wlm", "munge")
PARTITION = "debug"


def install() -> None:
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    if os.geteuid() != 0:
        raise RuntimeError("make test-slurm installs slurm-wlm and munge with apt-get: run it as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], check=True, env=env, stdout=subprocess.DEVNULL)


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 - 1024  # leave 1 GiB to the system
    raise RuntimeError("no MemTotal in /proc/meminfo")


class OneNodeCluster:
    def __init__(self, root: Path):
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.pids: Dict[str, Path] = {"munged": root / "munged.pid", "slurmctld": root / "slurmctld.pid",
                                      "slurmd": root / "slurmd.pid"}
        self.munge_socket = root / "munge.socket"

    @property
    def env(self) -> Dict[str, str]:
        """What a client (sbatch, squeue, submitit) needs to reach this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def _write_conf(self) -> None:
        spool = self.root / "spool"
        for d in ("state", "slurmd", "log"):
            (spool / d).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(f"""\
ClusterName=pairwise-rl-test
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket},cred_expire=20
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
StateSaveLocation={spool / 'state'}
SlurmdSpoolDir={spool / 'slurmd'}
SlurmctldPidFile={self.pids['slurmctld']}
SlurmdPidFile={self.pids['slurmd']}
SlurmctldLogFile={spool / 'log' / 'slurmctld.log'}
SlurmdLogFile={spool / 'log' / 'slurmd.log'}
SlurmctldPort=16817
SlurmdPort=16818
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
InactiveLimit=0
KillWait=10
MinJobAge=60
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={_memory_mb()} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
""")

    def start(self, timeout: float = 60.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._write_conf()
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True)
            shutil.chown(key, "munge", "munge")
        subprocess.run(["/usr/sbin/munged", "--force", f"--socket={self.munge_socket}",
                        f"--pid-file={self.pids['munged']}", f"--log-file={self.root / 'munged.log'}",
                        f"--seed-file={self.root / 'munged.seed'}"], check=True)
        env = {**os.environ, **self.env}
        subprocess.run(["/usr/sbin/slurmctld", "-f", str(self.conf)], check=True, env=env)
        subprocess.run(["/usr/sbin/slurmd", "-f", str(self.conf)], check=True, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env).stdout
            if state.strip() == "idle":
                return
            time.sleep(1)
        raise RuntimeError(f"the node did not come up idle in {timeout:.0f} s (sinfo: {state.strip()!r}); "
                           f"logs in {self.root / 'spool' / 'log'}")

    def controller_log(self) -> str:
        return (self.root / "spool" / "log" / "slurmctld.log").read_text(errors="replace")

    def running(self) -> List[str]:
        """The daemons this cluster started that are still alive."""
        alive = []
        for name, pid_file in self.pids.items():
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text().strip()), 0)
                    alive.append(name)
                except (ProcessLookupError, ValueError):
                    pass
        return alive

    def stop(self, timeout: float = 60.0) -> None:
        env = {**os.environ, **self.env}
        # Jobs first: slurmd leaves a job's slurmstepd and srun running across its own shutdown, by design.
        subprocess.run(["scancel", f"--partition={PARTITION}"], env=env, capture_output=True)
        deadline = time.time() + timeout
        while time.time() < deadline and subprocess.run(["squeue", "-h"], env=env, capture_output=True,
                                                          text=True).stdout.strip():
            time.sleep(0.5)
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True)  # slurmctld and every slurmd
        while time.time() < deadline and set(self.running()) - {"munged"}:
            time.sleep(0.5)
        for name in self.running():  # munged always; the others only if shutdown did not reach them
            os.kill(int(self.pids[name].read_text().strip()), signal.SIGTERM)
        while time.time() < deadline and self.running():
            time.sleep(0.5)
        strays = self.job_processes()
        for pid in strays:  # a step that outlived scancel (its daemons are gone now): nothing else will end it
            os.kill(pid, signal.SIGKILL)
        if self.running() or self.job_processes():
            raise RuntimeError(f"still running after stop(): {self.running()} {self.job_processes()}")

    def job_processes(self) -> List[int]:
        """Processes of this cluster's jobs (slurmstepd, srun, job scripts): their command line, working directory
        or environment names its files (every job inherits SLURM_CONF)."""
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(self.root) in command or self._ours(proc):
                pids.append(int(proc.name))
        return [pid for pid in pids if pid != os.getpid()]

    def _ours(self, proc: Path) -> bool:
        try:
            return str(self.root) in os.readlink(proc / "cwd") or str(self.root) in (proc / "environ").read_text(
                errors="replace")
        except OSError:
            return False
