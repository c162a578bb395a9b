#!/bin/sh
#PBS -N hello
#PBS -l nodes=1:ppn=1,mem=256mb
# A first job: where it runs, and as whom.
echo "hello from job $PBS_JOBID on $(hostname)"
echo "running as $(id)"
echo "inside a container: $(test -f /.dockerenv && echo yes || echo no)"
echo "working directory: $(pwd)"
