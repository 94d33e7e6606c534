#!/bin/sh
# clustrix lab: slurmd's Epilog (run as root on the node when a job ends; Slurm passes
# the job's comment as SLURM_JOB_COMMENT). A job whose comment carries the marker
# clx-slow-epilog stays COMPLETING for 30 s, so a test can see its result arrive while
# the scheduler still lists it. Every other job: nothing.
case "${SLURM_JOB_COMMENT:-}" in
  *clx-slow-epilog*) /bin/sleep 30 ;;
esac
exit 0
