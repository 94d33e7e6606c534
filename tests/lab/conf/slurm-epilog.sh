#!/bin/sh
# clustrix lab: Slurm's TaskEpilog (slurmstepd runs it as the job's owner once the batch
# script ended; the job stays RUNNING until it returns). A job submitted with
# CLX_SLOW_EPILOG=clx-slow-epilog in its environment (sbatch --export=ALL,CLX_SLOW_EPILOG=...)
# stays listed for 30 s more, so a test can see its result arrive while the scheduler
# still lists the job. Every other job: nothing.
case "${CLX_SLOW_EPILOG:-}" in
  *clx-slow-epilog*) /bin/sleep 30 ;;
esac
exit 0
