# shellcheck shell=bash
# Shared constants and helpers of the clustrix test lab (sourced by up.sh and down.sh).

LAB_STATE=/var/lib/clustrix-lab              # keys, password, lab.json
LAB_SSH=$LAB_STATE/ssh
LAB_JSON=$LAB_STATE/lab.json
LAB_LOGDIR=/var/log/clustrix-lab             # start-up output of the daemons, apt log
LAB_PBS_BIN=/usr/local/lib/clustrix-lab/pbs/bin
LAB_USER=clustrix                            # key-only login
LAB_UID=1001                                 # used if free
LAB_PW_USER=clustrixpw                       # password-only login
LAB_PORT_MAIN=2222                           # Slurm + Grid Engine
LAB_PORT_PBS=2226                            # Slurm's Torque/PBS wrappers first on PATH
SSHD_CONF=/etc/ssh/sshd_config_clustrix_lab
SSHD_PID=/run/sshd-clustrix-lab.pid
SSHD_LOG=/var/log/sshd-clustrix-lab.log
SGE_ROOT=/var/lib/gridengine
SGE_CELL=default
SGE_SPOOL=/var/spool/gridengine
QMASTER_PID=$SGE_SPOOL/qmaster/qmaster.pid   # sge_qmaster ignores SGE_MASTER_PIDFILE
EXECD_PID=/run/gridengine/execd.pid
export SGE_ROOT SGE_CELL

# Clean PATH (root's may have pyenv & co first).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C

# Daemons: name | pid file | /proc/PID/comm | extra text that must be in /proc/PID/cmdline
LAB_DAEMONS="
sshd|$SSHD_PID|sshd|sshd_config_clustrix_lab
munged|/run/munge/munged.pid|munged|
mariadbd|/run/mysqld/mysqld.pid|mariadbd|
slurmdbd|/run/slurmdbd.pid|slurmdbd|
slurmctld|/run/slurmctld.pid|slurmctld|
slurmd|/run/slurmd.pid|slurmd|
sge_qmaster|$QMASTER_PID|sge_qmaster|
sge_execd|$EXECD_PID|sge_execd|
"

lab_daemon_field() {  # NAME FIELDNO -> field of the LAB_DAEMONS row
  local line
  line=$(printf '%s\n' "$LAB_DAEMONS" | grep "^$1|") || return 1
  printf '%s\n' "$line" | cut -d'|' -f"$2"
}

# lab_alive PID COMM: PID is a live (not zombie) process named COMM. A SIGKILLed daemon
# lingers as a zombie for a second or two here, until PID 1 reaps it.
lab_alive() {
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
  case $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) in Z|X|x|"") return 1 ;; esac
}

# lab_pid NAME: print the pid of the running daemon NAME and return 0, else return 1.
# A pid file whose pid is dead, a zombie, or another program (pid reuse after SIGKILL)
# counts as "not running".
lab_pid() {
  local pidfile comm extra pid
  pidfile=$(lab_daemon_field "$1" 2) || return 1
  comm=$(lab_daemon_field "$1" 3)
  extra=$(lab_daemon_field "$1" 4)
  [ -r "$pidfile" ] || return 1
  pid=$(tr -dc 0-9 <"$pidfile" 2>/dev/null)
  lab_alive "$pid" "$comm" || return 1
  if [ -n "$extra" ]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$extra" || return 1
  fi
  printf '%s\n' "$pid"
}

# lab_wait SECONDS CMD...: run CMD every 0.2 s until it succeeds (0) or time runs out (1).
lab_wait() {
  local deadline=$((SECONDS + $1)); shift
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

# lab_stop NAME...: SIGTERM the named daemons (if running), wait up to 30 s, then SIGKILL.
lab_stop() {
  local n pid pids="" deadline
  for n in "$@"; do
    if pid=$(lab_pid "$n"); then
      kill -TERM "$pid" 2>/dev/null && pids="$pids $n:$pid"
    fi
  done
  [ -n "$pids" ] || return 0
  deadline=$((SECONDS + 30))
  for n in $pids; do
    pid=${n#*:}
    while lab_alive "$pid" "$(lab_daemon_field "${n%%:*}" 3)"; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        echo "  ${n%%:*} (pid $pid) did not stop in 30 s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
        break
      fi
      sleep 0.2
    done
    echo "  stopped ${n%%:*} (pid $pid)"
  done
}
