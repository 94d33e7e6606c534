#!/bin/bash
#PBS -N clx-single
#PBS -l nodes=1:ppn=1
# qsub reads the #PBS lines above; logs, array and hold are on its command line
# (Slurm's Torque wrappers ignore them in the script).
# clustrix job script (pbs, job clx-single); generated, do not edit.
# POSIX sh (the ssh backend runs it with `sh`). Child templates fill `directives` and
# may add a `prologue` (run after `cd "$RUN_DIR"`, before the environment is set up).
# Runs one element of a submission: the runner executes the element's tasks and
# writes their results itself; this script then records the runner's exit status in
# $RUN_DIR/elements/$ELEMENT.exit (temp file + mv, so it appears atomically) so that
# a backend can settle an element its scheduler has forgotten.
set -u

RUN_DIR=/home/alice/.clustrix/runs/r1
PYTHON=/usr/bin/python3
RUNNER=/home/alice/.clustrix/cache/runner.py
ELEMENT=${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-0}}
ELEMENT=$(( ELEMENT + 0 ))

clustrix_exit() {
    mkdir -p "$RUN_DIR/elements" &&
        printf '%s\n' "$1" >"$RUN_DIR/elements/$ELEMENT.exit.tmp.$$" &&
        mv -f "$RUN_DIR/elements/$ELEMENT.exit.tmp.$$" "$RUN_DIR/elements/$ELEMENT.exit"
    exit "$1"
}

cd "$RUN_DIR" || { echo "clustrix: cannot enter the run directory $RUN_DIR" >&2; exit 97; }
# Record that this element started (its pid and the node that runs it: the agent on
# the login node judges only its own node's pids), and do not start at all if
# clustrix cancelled it meanwhile. The node's name is read with a builtin where Linux
# offers it: every process this script starts is paid once per array element.
{ read -r CLUSTRIX_NODE </proc/sys/kernel/hostname; } 2>/dev/null || CLUSTRIX_NODE=$(uname -n)
echo "$$ $CLUSTRIX_NODE" >"$RUN_DIR/elements/$ELEMENT.pid"
if [ -e "$RUN_DIR/elements/$ELEMENT.cancel" ]; then clustrix_exit 130; fi

# On success the runner records exit 0 itself: no extra process on the common path.
"$PYTHON" "$RUNNER" run "$RUN_DIR" --element "$ELEMENT" || clustrix_exit "$?"
exit 0
