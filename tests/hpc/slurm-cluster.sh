#!/usr/bin/env bash
# tests/hpc/slurm-cluster.sh start STATE_DIR   -> prints the SLURM_CONF to export
# tests/hpc/slurm-cluster.sh stop STATE_DIR
#
# A real single-node SLURM cluster on loopback for the HPC tests: Debian's slurmctld + slurmd,
# auth/none (one machine, root only), private ports, every file under STATE_DIR, stopped by PID.
# The node declares one GPU backed by /dev/null so `--gres=gpu:1` scripts run without a GPU.
set -euo pipefail
action=$1 state=$(realpath -m "$2")
conf=$state/slurm.conf

stop() {
    for d in slurmd slurmctld; do
        pid=$(cat "$state/$d.pid" 2>/dev/null) || continue
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -f "$state"/*.pid
}

case $action in
start)
    if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null; then
        echo "slurm-cluster: installing slurmctld slurmd slurm-client (Debian)" >&2
        { apt-get install -y --no-install-recommends slurmctld slurmd slurm-client \
            || { apt-get update && apt-get install -y --no-install-recommends slurmctld slurmd slurm-client; }; } \
            >"$state.apt.log" 2>&1 || { tail -20 "$state.apt.log" >&2; exit 1; }
    fi
    stop
    # A fresh state every time: a drained node state survives restarts.
    rm -rf "$state" && mkdir -p "$state/spool/ctld" "$state/spool/d"
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    cat >"$conf" <<EOF
ClusterName=textless
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
AuthType=auth/none
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MailProg=/bin/true
ReturnToService=2
SchedulerParameters=sched_interval=1
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    echo "NodeName=$host Name=gpu File=/dev/null" >"$state/gres.conf"
    export SLURM_CONF=$conf
    slurmctld -f "$conf"
    slurmd -f "$conf"
    for _ in $(seq 100); do
        if scontrol ping >/dev/null 2>&1 && [ "$(sinfo -h -o %T 2>/dev/null)" = idle ]; then
            echo "$conf"; exit 0
        fi
        sleep 0.2
    done
    echo "slurm-cluster: the node did not come up idle; logs:" >&2
    tail -5 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
    stop; exit 1
    ;;
stop)
    stop ;;
*)
    echo "usage: $0 start|stop STATE_DIR" >&2; exit 2 ;;
esac
