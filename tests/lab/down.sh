#!/usr/bin/env bash
# clustrix test lab: stop every lab daemon by its pid file (checking /proc/PID/comm first,
# so a stale pid file never kills an unrelated process). Packages, configs, users, keys,
# job accounting and spools are kept: up.sh brings the same lab back.
#
#   bash tests/lab/down.sh
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "$(id -u)" != 0 ]; then echo "down.sh: must run as root" >&2; exit 77; fi
# shellcheck source=lib.sh
. "$HERE/lib.sh"
SECONDS=0
# Dependents first; each stage is stopped in parallel. slurmctld, sge_qmaster and mariadbd
# take several seconds after SIGTERM (a new sge_qmaster started meanwhile would be a second one).
lab_stop sshd sge_execd slurmd
lab_stop sge_qmaster slurmctld
lab_stop slurmdbd
lab_stop mariadbd munged
left=""
for n in sshd munged mariadbd slurmdbd slurmctld slurmd sge_qmaster sge_execd; do
  lab_pid "$n" >/dev/null && left="$left $n"
done
if [ -n "$left" ]; then echo "down.sh: still running:$left" >&2; exit 1; fi
echo "down.sh: lab stopped in $SECONDS s"
