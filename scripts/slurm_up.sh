#!/usr/bin/env bash
# (The team's known-working recipe from shared/reference, kept in the project so CI needs nothing else.)
# slurm_up.sh - bring up a REAL Slurm cluster (munge + slurmctld + one slurmd per node,
# optionally MariaDB + slurmdbd for sacct) on one Debian 12 machine, as root, for CI.
#
# Idempotent: re-running it re-uses installed packages, existing state and running
# daemons (detected via PID files).  Every daemon writes a PID file under
# $SLURM_CI_DIR/run so that slurm_down.sh can stop exactly those processes.
#
# Afterwards:   source "$SLURM_CI_DIR/env.sh"   (exports SLURM_CONF)
#
# Knobs (environment variables):
#   SLURM_CI_DIR          state/config/log dir          (default $TMPDIR/slurm-ci)
#   SLURM_ACCOUNTING      1 = MariaDB + slurmdbd, so that `sacct` works (default 1).
#                         submitit polls `sacct` for job state: without it, job.state is
#                         always UNKNOWN and a job killed without a result file
#                         (scancel, OOM, node failure) makes job.result() hang forever.
#   SLURM_NODES           number of Slurm nodes (default 1: node "localhost"). N>1 runs N slurmd
#                         daemons on this machine (Debian's slurmd is built with multiple-slurmd
#                         support: one NodeName each, its own Port), nodes ci-node[1-N], each
#                         with SLURM_CPUS CPUs; /etc/hosts gets "127.0.0.1 ci-node1 ..." so a
#                         node name resolves as on a real cluster (the rendezvous of a multi-node
#                         run is the first host of SLURM_JOB_NODELIST). `srun -N2` then runs
#                         on two real nodes, each task with its own slurmd and slurmstepd.
#   SLURM_CPUS            CPUs advertised for each node (default: real count). A value
#                         larger than the real core count lets more 1-CPU jobs run at once
#                         (uses SlurmdParameters=config_overrides - testing only).
#   SLURM_MEM_MB          RealMemory advertised (default: 90% of real memory)
#   SLURM_LINK_ETC        1 = also symlink /etc/slurm/slurm.conf -> our slurm.conf so
#                         clients work without SLURM_CONF (default 0)
#   SLURM_CTLD_PORT / SLURM_SLURMD_PORT / SLURM_DBD_PORT / SLURM_MYSQL_PORT
#                         (defaults 6817 / 6818 / 6819 / 3307). With SLURM_NODES=N>1 the
#                         slurmds listen on SLURM_SLURMD_PORT .. SLURM_SLURMD_PORT+N-1
#                         (default then 6820..), which must not hold any of the other ports.
#   SLURM_CRED_EXPIRE     seconds; also the delay before a requeued job may restart
#                         (Slurm default 120; default here 10)
set -euo pipefail

T_START=$(date +%s%N)
DIR=${SLURM_CI_DIR:-${TMPDIR:-/tmp}/slurm-ci}
ACCOUNTING=${SLURM_ACCOUNTING:-1}
LINK_ETC=${SLURM_LINK_ETC:-0}
CTLD_PORT=${SLURM_CTLD_PORT:-6817}
DBD_PORT=${SLURM_DBD_PORT:-6819}
MYSQL_PORT=${SLURM_MYSQL_PORT:-3307}
CRED_EXPIRE=${SLURM_CRED_EXPIRE:-10}
NODES=${SLURM_NODES:-1}
[[ "$NODES" =~ ^[1-9][0-9]*$ ]] || { echo "SLURM_NODES=$NODES: expected a whole number >= 1" >&2; exit 1; }
if [ "$NODES" = 1 ]; then SLURMD_PORT=${SLURM_SLURMD_PORT:-6818}; else SLURMD_PORT=${SLURM_SLURMD_PORT:-6820}; fi
for p in "$CTLD_PORT" "$DBD_PORT" "$MYSQL_PORT"; do
  if [ "$p" -ge "$SLURMD_PORT" ] && [ "$p" -lt $((SLURMD_PORT + NODES)) ]; then
    echo "SLURM_SLURMD_PORT=$SLURMD_PORT with SLURM_NODES=$NODES uses ports $SLURMD_PORT-$((SLURMD_PORT + NODES - 1)), which hold port $p: pick another SLURM_SLURMD_PORT" >&2; exit 1
  fi
done
if [ "$NODES" = 1 ]; then
  NODE=localhost; NODE_NAMES=(localhost)
else
  NODE="ci-node[1-$NODES]"; NODE_NAMES=(); for i in $(seq "$NODES"); do NODE_NAMES+=("ci-node$i"); done
fi
# one PID file and log per slurmd: slurmd.pid / slurmd.log for the single node (as before),
# slurmd.<node>.pid / slurmd.<node>.log with several (slurmd expands %n to its node name)
slurmd_file() { if [ "$NODES" = 1 ]; then echo "slurmd.$2"; else echo "slurmd.$1.$2"; fi; }
CLUSTER=ci
PARTITION=debug

log() { local ms=$(( ($(date +%s%N) - T_START) / 1000000 )); printf '[slurm_up %4d.%ds] %s\n' $((ms/1000)) $((ms%1000/100)) "$*"; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

# ---------------------------------------------------------------- packages
PKGS=(slurmctld slurmd slurm-client munge)
BINS=(slurmctld slurmd sbatch munged)
if [ "$ACCOUNTING" = 1 ]; then PKGS+=(slurmdbd mariadb-server); BINS+=(slurmdbd mariadbd); fi
missing=0
for b in "${BINS[@]}"; do command -v "$b" >/dev/null 2>&1 || { [ -x "/usr/sbin/$b" ] || missing=1; }; done
if [ "$missing" = 1 ]; then
  log "installing ${PKGS[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: slurm-wlm's recommends pull ~35 extra plugin packages.
  # Services are not started by postinst in containers (policy-rc.d / no systemd),
  # and we start our own daemons anyway.
  apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
fi
export PATH=$PATH:/usr/sbin:/sbin
log "slurm $(slurmctld -V | awk '{print $2}'), $(munged -V 2>&1 | head -1)"

# ---------------------------------------------------------------- dirs
mkdir -p "$DIR"/{etc,state,spool,log,run,mysql}
for n in "${NODE_NAMES[@]}"; do mkdir -p "$DIR/spool/slurmd.$n"; done
install -d -m 0755 "$DIR/munge"      # munged requires an o+x socket dir
chmod 0755 "$DIR"

is_running() {  # $1 pidfile, $2 expected /proc/PID/comm prefix
  local pf=$1 name=$2 pid
  [ -s "$pf" ] || return 1
  pid=$(cat "$pf")
  kill -0 "$pid" 2>/dev/null || return 1
  [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z* ]] || return 1   # killed, not yet reaped
  [[ "$(cat /proc/"$pid"/comm 2>/dev/null)" == "$name"* ]]
}
wait_for() {  # $1 seconds, $2.. command
  local t=$1; shift
  local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.2
  done
}

# ---------------------------------------------------------------- munge
MUNGE_SOCK=$DIR/munge/munge.socket.2
if [ ! -s "$DIR/munge/munge.key" ]; then
  mungekey -c -k "$DIR/munge/munge.key"
fi
chmod 0400 "$DIR/munge/munge.key"
if is_running "$DIR/run/munged.pid" munged; then
  log "munged already running (pid $(cat "$DIR/run/munged.pid"))"
else
  rm -f "$MUNGE_SOCK" "$MUNGE_SOCK.lock" "$DIR/run/munged.pid"
  munged --socket="$MUNGE_SOCK" --key-file="$DIR/munge/munge.key" \
         --log-file="$DIR/log/munged.log" --pid-file="$DIR/run/munged.pid" \
         --seed-file="$DIR/munge/munged.seed"
  wait_for 10 test -S "$MUNGE_SOCK" || die "munged did not start: $(tail -3 "$DIR/log/munged.log")"
  log "munged started (pid $(cat "$DIR/run/munged.pid"))"
fi
munge -S "$MUNGE_SOCK" -n | unmunge -S "$MUNGE_SOCK" >/dev/null || die "munge self-test failed"

# ---------------------------------------------------------------- slurm.conf
read -r HW_CPUS HW_BOARDS HW_SOCKETS HW_CORES HW_THREADS HW_MEM < <(
  slurmd -C | head -1 | tr ' ' '\n' | awk -F= '
    $1=="CPUs"{c=$2} $1=="Boards"{b=$2} $1=="SocketsPerBoard"{s=$2}
    $1=="CoresPerSocket"{k=$2} $1=="ThreadsPerCore"{t=$2} $1=="RealMemory"{m=$2}
    END{print c,b,s,k,t,m}')
MEM=${SLURM_MEM_MB:-$(( HW_MEM * 9 / 10 ))}
# Job ids restart at 1 whenever the state dir is new; a submitit folder like
# "logs/%j" that survives between runs would then hand back a stale result pickle of an
# older job with the same id.  Start each new cluster at a random id (MaxJobId is 67043328).
if [ ! -s "$DIR/first_job_id" ]; then
  shuf -i 1000-50000000 -n 1 > "$DIR/first_job_id"
fi
FIRST_JOB_ID=$(cat "$DIR/first_job_id")
if [ -n "${SLURM_CPUS:-}" ] && [ "$SLURM_CPUS" != "$HW_CPUS" ]; then
  NODE_HW="CPUs=$SLURM_CPUS"
  OVERRIDES="SlurmdParameters=config_overrides"
else
  NODE_HW="CPUs=$HW_CPUS Boards=$HW_BOARDS SocketsPerBoard=$HW_SOCKETS CoresPerSocket=$HW_CORES ThreadsPerCore=$HW_THREADS"
  OVERRIDES=""
fi
if [ "$NODES" = 1 ]; then
  NODE_PORTS=""
else  # several slurmd on one host: each its own port (NodeHostname is this machine for all)
  NODE_PORTS="NodeHostname=$(hostname) Port=$SLURMD_PORT-$((SLURMD_PORT + NODES - 1))"
fi
if [ "$ACCOUNTING" = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# the slurmctld<->slurmdbd connection ignores AuthInfo=socket=; it takes the munge
# socket from AccountingStoragePass (otherwise it tries /run/munge/munge.socket.2)
AccountingStoragePass=$MUNGE_SOCK
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
else
  ACCT="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi
NEWCONF=$(cat <<EOF
# generated by slurm_up.sh
ClusterName=$CLUSTER
SlurmctldHost=localhost
FirstJobId=$FIRST_JOB_ID
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK,cred_expire=$CRED_EXPIRE
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd.%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/$(slurmd_file %n pid)
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/$(slurmd_file %n log)
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups: plain process tracking, no task containment
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
$ACCT
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2,sched_interval=2
# CR_Core: memory is not a consumable resource, so jobs only compete for cores
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
Waittime=0
$OVERRIDES
NodeName=$NODE NodeAddr=127.0.0.1 ${NODE_PORTS:+$NODE_PORTS }$NODE_HW RealMemory=$MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)
CONF=$DIR/etc/slurm.conf
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$NEWCONF" ]; then
  printf '%s\n' "$NEWCONF" > "$CONF"
  CONF_CHANGED=1
else
  CONF_CHANGED=0
fi
export SLURM_CONF=$CONF
cat > "$DIR/env.sh" <<EOF
export SLURM_CONF=$CONF
export PATH=\$PATH:/usr/sbin
EOF
if [ "$LINK_ETC" = 1 ]; then
  mkdir -p /etc/slurm && ln -sfn "$CONF" /etc/slurm/slurm.conf
fi

# ---------------------------------------------------------------- accounting (optional)
if [ "$ACCOUNTING" = 1 ]; then
  MY=$DIR/mysql
  if [ ! -d "$MY/data/mysql" ]; then
    log "initialising MariaDB datadir"
    mariadb-install-db --no-defaults --user=root --datadir="$MY/data" --skip-test-db \
      --auth-root-authentication-method=socket >"$DIR/log/mariadb-install.log" 2>&1 \
      || die "mariadb-install-db failed: $(tail -5 "$DIR/log/mariadb-install.log")"
  fi
  if is_running "$DIR/run/mariadbd.pid" mariadbd; then
    log "mariadbd already running (pid $(cat "$DIR/run/mariadbd.pid"))"
  else
    rm -f "$MY/mysql.sock" "$DIR/run/mariadbd.pid"
    setsid mariadbd --no-defaults --user=root --datadir="$MY/data" --socket="$MY/mysql.sock" \
      --pid-file="$DIR/run/mariadbd.pid" --port="$MYSQL_PORT" --bind-address=127.0.0.1 \
      --log-error="$DIR/log/mariadb.err" --innodb-buffer-pool-size=256M \
      --innodb-lock-wait-timeout=900 --innodb-log-file-size=64M \
      </dev/null >/dev/null 2>&1 &
    wait_for 60 test -S "$MY/mysql.sock" || die "mariadbd did not start: $(tail -5 "$DIR/log/mariadb.err")"
    wait_for 10 test -s "$DIR/run/mariadbd.pid" || true
    log "mariadbd started (pid $(cat "$DIR/run/mariadbd.pid"))"
  fi
  mariadb --socket="$MY/mysql.sock" -uroot -e "
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
    FLUSH PRIVILEGES;"
  # slurmdbd has no -f option: it reads slurmdbd.conf from the directory of SLURM_CONF
  cat > "$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chmod 0600 "$DIR/etc/slurmdbd.conf"   # slurmdbd refuses a world-readable config
  if is_running "$DIR/run/slurmdbd.pid" slurmdbd; then
    log "slurmdbd already running (pid $(cat "$DIR/run/slurmdbd.pid"))"
  else
    rm -f "$DIR/run/slurmdbd.pid"
    slurmdbd
    wait_for 60 sacctmgr -n show cluster || die "slurmdbd not answering: $(tail -5 "$DIR/log/slurmdbd.log")"
    log "slurmdbd started (pid $(cat "$DIR/run/slurmdbd.pid"))"
  fi
fi

# ---------------------------------------------------------------- slurmctld + slurmd
stop_pidfile() {  # $1 pidfile, $2 comm: SIGTERM the daemon we started earlier, wait for it
  local pid; is_running "$1" "$2" || return 0
  pid=$(cat "$1"); kill -TERM "$pid"
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"; rm -f "$1"
}
running_slurmds() {  # the PID files of slurmd daemons still running (any node layout)
  local pf; for pf in "$DIR"/run/slurmd.pid "$DIR"/run/slurmd.*.pid; do
    [ -e "$pf" ] && is_running "$pf" slurmd && echo "$pf"; done; return 0
}
if [ "$CONF_CHANGED" = 1 ] && { is_running "$DIR/run/slurmctld.pid" slurmctld || [ -n "$(running_slurmds)" ]; }; then
  # node definitions (CPUs, memory, ports) are only picked up on restart, not by `scontrol reconfigure`
  log "slurm.conf changed: restarting slurmd + slurmctld"
  for pf in $(running_slurmds); do stop_pidfile "$pf" slurmd; done
  stop_pidfile "$DIR/run/slurmctld.pid" slurmctld
fi
if is_running "$DIR/run/slurmctld.pid" slurmctld; then
  log "slurmctld already running (pid $(cat "$DIR/run/slurmctld.pid"))"
else
  rm -f "$DIR/run/slurmctld.pid"
  slurmctld -i -f "$CONF"
  wait_for 30 scontrol ping || die "slurmctld not answering: $(tail -5 "$DIR/log/slurmctld.log")"
  log "slurmctld started (pid $(cat "$DIR/run/slurmctld.pid"))"
fi
if [ "$NODES" != 1 ]; then
  # node names resolve as on a real cluster: a multi-node run meets at the first host of its node list
  for n in "${NODE_NAMES[@]}"; do
    getent hosts "$n" >/dev/null || { echo "127.0.0.1 $n   # slurm_up.sh (SLURM_NODES)" >> /etc/hosts; log "/etc/hosts: $n -> 127.0.0.1"; }
  done
fi
for n in "${NODE_NAMES[@]}"; do
  pf=$DIR/run/$(slurmd_file "$n" pid); lf=$DIR/log/$(slurmd_file "$n" log)
  if is_running "$pf" slurmd; then
    log "slurmd $n already running (pid $(cat "$pf"))"
  else
    rm -f "$pf"
    slurmd -f "$CONF" -N "$n"
    wait_for 10 test -s "$pf" || die "slurmd $n did not start: $(tail -5 "$lf")"
    log "slurmd $n started (pid $(cat "$pf"))"
  fi
done
node_ready() { [ -z "$(sinfo -h -n "$NODE" -o %t 2>/dev/null | grep -v -E '^(idle|mix|alloc)$')" ] \
               && [ "$(sinfo -h -N -n "$NODE" -o %N 2>/dev/null | wc -l)" = "$NODES" ]; }
if ! wait_for 30 node_ready; then
  scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
  wait_for 15 node_ready || die "nodes not ready: $(sinfo -N -l); $(tail -5 "$DIR/log/$(slurmd_file "${NODE_NAMES[0]}" log)")"
fi

# ---------------------------------------------------------------- smoke test
out=$(timeout 60 srun -p "$PARTITION" -N1 -n1 -t 1 echo slurm-ok) || die "srun smoke test failed"
[ "$out" = slurm-ok ] || die "srun smoke test printed: $out"
if [ "$NODES" != 1 ]; then  # one task on every node, each seeing its node and the job's size
  out=$(timeout 60 srun -p "$PARTITION" -N"$NODES" --ntasks-per-node=1 -t 1 \
        bash -c 'echo $SLURM_PROCID/$SLURM_NTASKS@$SLURMD_NODENAME' | sort | tr '\n' ' ') \
    || die "srun -N$NODES smoke test failed"
  want=$(for i in $(seq 0 $((NODES - 1))); do echo "$i/$NODES@${NODE_NAMES[$i]}"; done | sort | tr '\n' ' ')
  [ "$out" = "$want" ] || die "srun -N$NODES printed '$out', expected '$want'"
fi
log "cluster up: $(sinfo -h -o '%P %a %D %t %N'); srun ok"
log "use:  source $DIR/env.sh   (SLURM_CONF=$CONF)"
