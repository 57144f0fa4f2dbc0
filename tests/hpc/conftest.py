"""A real single-node SLURM cluster for the HPC tests, and a client for it.

Uses a cluster that already answers (`scontrol ping` with the caller's SLURM_CONF), else starts a
private one with tests/hpc/slurm-cluster.sh and stops it by PID at the end. Jobs call `apptainer`
as on a cluster; where this machine has apptainer only inside the toolbox, a two-line `apptainer`
on the jobs' PATH enters it (apptainer/apptainer.sh) with the test's directories bound.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import built_sif

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "tests" / "hpc" / "slurm-cluster.sh"


@dataclass
class Slurm:
    env: dict
    sif: str

    def run(self, *cmd, check=True, **kw) -> subprocess.CompletedProcess:
        r = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, env=self.env, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, cmd))} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def submit(self, output: Path, shards: int, *features_args, options=()) -> tuple[str, str]:
        r = self.run(REPO / "slurm" / "submit.sh", "--sif", self.sif, "--output", output, "--shards", shards,
                     "--cpus", 1, "--mem", "2G", *options, "--", *features_args)
        array, merge = r.stdout.split()
        return array, merge

    def states(self, job: str) -> dict[str, str]:
        """{array task id or job id: state} for every record of the job that slurmctld still holds."""
        out = self.run("scontrol", "-o", "show", "job", job).stdout
        states = {}
        for line in out.splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            states[fields.get("ArrayTaskId") or fields["JobId"]] = fields["JobState"]
        return states

    def wait(self, *jobs: str, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while any(self.run("squeue", "-h", "-j", job, check=False).stdout.strip() for job in jobs):
            if time.monotonic() > deadline:
                raise AssertionError(f"jobs {jobs} still queued after {timeout} s:\n" + self.run("squeue").stdout)
            time.sleep(1)


def _existing_cluster() -> bool:
    if shutil.which("scontrol") is None:
        return False
    return subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout.count("UP") > 0


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    sif, apptainer_state = built_sif()
    work = tmp_path_factory.getbasetemp()
    env = dict(os.environ)
    started = None
    if not _existing_cluster():
        state = Path(os.environ.get("TEXTLESS_BUILD_DIR", REPO / ".build")) / "slurm"
        r = subprocess.run([str(CLUSTER), "start", str(state)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail(f"could not start a SLURM cluster: {r.stderr.strip()}")
        env["SLURM_CONF"], started = r.stdout.strip(), state
    if shutil.which("apptainer") is None:
        bin_dir = work / "bin"
        bin_dir.mkdir()
        wrapper = bin_dir / "apptainer"
        # off PATH again before apptainer.sh looks for a host apptainer (it would find this one)
        wrapper.write_text(f'#!/bin/sh\nPATH=$(echo "$PATH" | sed "s|{bin_dir}:||")\n'
                           f'exec {REPO}/apptainer/apptainer.sh {apptainer_state} '
                           f'--bind {work} --bind {Path(sif).parent} "$@"\n')
        wrapper.chmod(0o755)
        env["PATH"] = f"{bin_dir}:{env['PATH']}"
        # root here lacks CAP_SYS_RESOURCE, which apptainer's privileged path asks for: user namespaces
        # instead (what most clusters use too). The templates' documented knob carries it.
        env["TS_APPTAINER_FLAGS"] = "--userns"
    yield Slurm(env, sif)
    if started:
        subprocess.run([str(CLUSTER), "stop", str(started)], check=False)
