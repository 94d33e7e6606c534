#!/bin/bash
#$ -N clx-single
#$ -S /bin/bash
#$ -o clx-single.$JOB_ID.out
#$ -e clx-single.$JOB_ID.err
# qsub reads the #$ lines above; it expands $JOB_ID and $TASK_ID in the log names,
# which are relative to the log directory given as `qsub -wd` on its command line.
# clustrix job script (sge, job clx-single); generated, do not edit.
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
ELEMENT=$(case "${SGE_TASK_ID:-undefined}" in (undefined) echo 0 ;; (*) echo "$((SGE_TASK_ID - 1))" ;; esac)
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
