#!/bin/bash
# A real single-node Slurm on this machine, as ../shared/recipes/local-slurm.md
# verified it: munge, slurmctld and slurmd as root, state and logs under DIR.
#   scripts/local-slurm.sh start [DIR]   (default /tmp/herd-slurm); prints DIR/slurm.conf
#   scripts/local-slurm.sh stop [DIR]
# clusters/slurm-local.yaml points at /tmp/herd-slurm/slurm.conf.
set -euo pipefail
cmd=${1:?usage: local-slurm.sh start|stop [DIR]}
dir=${2:-/tmp/herd-slurm}
ctld_port=${HERD_SLURMCTLD_PORT:-16817}
slurmd_port=${HERD_SLURMD_PORT:-16818}
cpus=${HERD_SLURM_CPUS:-8}

stop() {
    for f in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/munged.pid; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
    sleep 0.5
}

case "$cmd" in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: local-slurm.sh start|stop [DIR]" >&2; exit 2 ;;
esac

for c in slurmctld slurmd munged sbatch; do
    command -v "$c" >/dev/null || { echo "local-slurm: $c is not installed (make setup installs slurm-wlm)" >&2; exit 1; }
done
stop
mkdir -p "$dir"/state "$dir"/spool "$dir"/munge
chown munge: "$dir"/munge 2>/dev/null || true
host=$(hostname -s)

# munged as the munge user (as root it may reject the packaged key).
# Daemons get no inherited stdout: a caller reading our output to its end
# would otherwise wait for them.
runuser -u munge -- munged --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" --force </dev/null >/dev/null 2>&1 \
    || munged --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" --force </dev/null >/dev/null 2>&1
cp "$dir/munge/munged.pid" "$dir/munged.pid" 2>/dev/null || true

cat > "$dir/slurm.conf" <<CONF
ClusterName=herd-local
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
MpiDefault=none
NodeName=$host CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
CONF

export SLURM_CONF="$dir/slurm.conf"
slurmctld -c -f "$SLURM_CONF" </dev/null >/dev/null 2>&1
slurmd -f "$SLURM_CONF" </dev/null >/dev/null 2>&1
for _ in $(seq 1 50); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then echo "$SLURM_CONF"; exit 0; fi
    sleep 0.2
done
echo "local-slurm: the node did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
sinfo >&2 || true
exit 1
