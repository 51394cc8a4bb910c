#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm.py.
#
#   tests/cluster/local_slurm.sh start   install slurm-wlm and munge when missing, start
#                                        munged, slurmctld and slurmd when not running,
#                                        wait until a job step runs
#   tests/cluster/local_slurm.sh stop    stop the daemons that `start` started, no others
#   tests/cluster/local_slurm.sh logs    the end of each daemon's log (to explain a failure)
#
# Needs root, and apt-get when the packages are missing (Debian 12: slurm-wlm 22.05).
# No systemd and no accounting database: finished jobs stay visible to `squeue
# --states=all` for MinJobAge seconds, so the executor plugin must poll squeue
# (`--slurm-status-command squeue`), not sacct.
#
# The node is called localhost (not this machine's host name, hence `slurmd -N`)
# and has this machine's CPUs and 90 % of its memory; it is in two partitions,
# `main` (the default) and `gpu`, the names profiles/slurm/config.yaml uses (the
# gpu partition has no GPU: the tests ask for none).
#
# /etc/slurm/slurm.conf is written only when it is missing or was written by this
# script (a real cluster's configuration is never replaced); spool directories,
# logs and pid files live in $STATE.
set -euo pipefail

STATE=${EDN_TEST_SLURM_STATE:-/var/lib/edn-test-slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# Written by edn's tests/cluster/local_slurm.sh"
NODE=localhost
STARTED=$STATE/started       # one daemon name a line: what `stop` may stop

say() { echo "local_slurm: $*" >&2; }
die() { say "error: $*"; exit 1; }

# A daemon is ours to manage when its pid file names a live process of that name.
running() {  # running PIDFILE NAME
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ -r /proc/$pid/comm && $(</proc/$pid/comm) == "$2" ]]
}

stop_daemon() {  # stop_daemon PIDFILE NAME
    local pid
    if running "$1" "$2"; then
        pid=$(<"$1")
        say "stopping $2 (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.2; done
        if [[ -d /proc/$pid ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$1"
}

retry() {  # retry SECONDS WHAT COMMAND...: run COMMAND until it succeeds
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq $((seconds * 4))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.25
    done
    die "$what: not ready after ${seconds}s (see: $0 logs)"
}

record_started() { grep -qx "$1" "$STARTED" 2>/dev/null || echo "$1" >>"$STARTED"; }

pidfile() {
    case $1 in
        munged) echo /run/munge/munged.pid ;;
        *) echo "$STATE/run/$1.pid" ;;
    esac
}

install_packages() {
    local missing=() package
    for package in slurm-wlm munge; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
    done
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null || die "packages ${missing[*]} are missing and there is no apt-get to install them"
    say "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0  # a munged is already answering (ours from before, or the system's)
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then  # Debian's package normally makes one
        say "creating /etc/munge/munge.key"
        install -d -o munge -g munge -m 0700 /etc/munge
        head -c 1024 /dev/urandom >/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged
    record_started munged
    retry 10 munged bash -c "munge -n | unmunge"
}

# Prints the configuration; memory must not exceed what slurmd detects, or the
# node is drained.
slurm_conf() {
    local cpus memory
    cpus=$(nproc)
    memory=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    cat <<EOF
$MARKER: a one-node test cluster.
ClusterName=edntest
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$(pidfile slurmctld)
SlurmdPidFile=$(pidfile slurmd)
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# No cgroups in a container: track processes by parent, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# squeue reports finished jobs for this long (the executor plugin polls squeue).
MinJobAge=300
# A request larger than the node is an error at once, not a job pending forever.
EnforcePartLimits=ALL
# Seconds between a time limit's SIGTERM and SIGKILL (SLURM's default).
KillWait=30
NodeName=$NODE CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=main Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
}

node_ready() { sinfo --noheader --nodes="$NODE" --format=%t | grep -Eq "^(idle|mix|alloc)"; }

start() {
    [[ $(id -u) == 0 ]] || die "needs root (it installs packages and starts daemons)"
    install -d -m 0755 "$STATE" "$STATE/run" "$STATE/d"
    install_packages
    start_munge

    if [[ -e $CONF ]] && ! grep -qxF "$MARKER: a one-node test cluster." "$CONF"; then
        die "$CONF exists and was not written by this script: not replacing a real cluster's configuration"
    fi
    install -d -m 0755 /etc/slurm
    install -d -o slurm -g slurm -m 0755 "$STATE/ctld" "$STATE/log"
    local wanted
    wanted=$(slurm_conf)
    if [[ ! -e $CONF || $(<"$CONF") != "$wanted" ]]; then
        say "writing $CONF"
        printf '%s\n' "$wanted" >"$CONF.new"
        mv "$CONF.new" "$CONF"
        # Daemons of ours that run with an older configuration start again.
        stop_daemon "$(pidfile slurmd)" slurmd
        stop_daemon "$(pidfile slurmctld)" slurmctld
    fi

    if ! running "$(pidfile slurmctld)" slurmctld; then
        say "starting slurmctld"
        slurmctld
        record_started slurmctld
    fi
    retry 30 slurmctld scontrol ping
    if ! running "$(pidfile slurmd)" slurmd; then
        say "starting slurmd"
        slurmd -N "$NODE"
        record_started slurmd
    fi
    if ! (for _ in $(seq 60); do node_ready && exit 0; sleep 0.25; done; exit 1); then
        # Left down or drained by an earlier run: return it to service once.
        scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
        retry 15 "node $NODE" node_ready
    fi
    local host
    host=$(timeout 60 srun --partition=main --time=1 --ntasks=1 hostname) || die "srun could not run a job step"
    say "ready: a job step ran on $host"
}

stop() {
    local name
    [[ -s $STARTED ]] || return 0
    # Reverse order of starting: slurmd, slurmctld, then munged.
    for name in slurmd slurmctld munged; do
        if grep -qx "$name" "$STARTED"; then stop_daemon "$(pidfile "$name")" "$name"; fi
    done
    rm -f "$STARTED"
    # A slurm.conf naming a controller that no longer runs makes every SLURM client,
    # the Snakemake executor plugin's `scontrol show config` at each start among them,
    # wait about 9 s for it: ours goes with the daemons (`start` writes it again).
    if [[ -f $CONF ]] && grep -qxF "$MARKER: a one-node test cluster." "$CONF"; then rm -f "$CONF"; fi
}

logs() {
    local file
    for file in "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log"; do
        [[ -f $file ]] || continue
        echo "==> $file <=="
        tail -n 40 "$file"
    done
    sinfo --long --Node 2>/dev/null || true
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    logs) logs ;;
    *) echo "usage: $0 start|stop|logs" >&2; exit 2 ;;
esac
