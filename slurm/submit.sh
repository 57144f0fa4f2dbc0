#!/usr/bin/env bash
# slurm/submit.sh --sif SIF --output DIR --shards N [options] -- INPUT [FEATURES OPTIONS...]
#
# Queue a `features` job array over the SIF (one task per shard) and a merge job that runs when
# every task succeeded. Run it again with the same arguments to resume: finished files are skipped.
# Prints "ARRAY_JOB_ID MERGE_JOB_ID" on stdout.
#
# Options:
#   --sif SIF              the image (required)
#   --output DIR           output directory on shared storage (required)
#   --shards N             shards = array tasks (required)
#   --tasks LIST           only these array indices (e.g. 3,7 to redo two shards; default 0-(N-1))
#   --max-running K        at most K tasks at once (the array's %K)
#   --gpus G               GPUs per task (--gres=gpu:G; default 0: CPU)
#   --cpus C, --mem M, --time T, --partition P, --account A   resources per task (C CPUs: the model's
#                          threads on CPU; with --gpus, C decoding workers, `features --workers C`: about
#                          2,200-2,600 audio-s/s of 16 kHz FLAC, 750-900 of 44.1 kHz FLAC per core; README "CPUs")
#   --models DIR           model cache (prefetched on a login node: `textless-stack models fetch`)
#   --bind DIR             a directory the job reads (the corpus); repeatable
#   --sbatch ARG           any other sbatch argument, for both jobs; repeatable
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
sif= output= shards= tasks= max_running= gpus=0 binds=() array_opts=() common=()
while [ $# -gt 0 ]; do
    case $1 in
    --sif) sif=$(realpath "$2"); shift 2 ;;
    --output) output=$(realpath -m "$2"); shift 2 ;;
    --shards) shards=$2; shift 2 ;;
    --tasks) tasks=$2; shift 2 ;;
    --max-running) max_running=$2; shift 2 ;;
    --gpus) gpus=$2; shift 2 ;;
    --cpus) array_opts+=(--cpus-per-task="$2"); shift 2 ;;
    --mem) array_opts+=(--mem="$2"); shift 2 ;;
    --time) array_opts+=(--time="$2"); shift 2 ;;
    --partition) common+=(--partition="$2"); shift 2 ;;
    --account) common+=(--account="$2"); shift 2 ;;
    --models) export TS_MODELS; TS_MODELS=$(realpath -m "$2"); shift 2 ;;
    --bind) binds+=("$(realpath "$2")"); shift 2 ;;
    --sbatch) common+=("$2"); shift 2 ;;
    -h|--help) usage ;;
    --) shift; break ;;
    *) echo "submit.sh: unknown option $1 (features options go after --)" >&2; exit 2 ;;
    esac
done
[ -n "$sif" ] && [ -n "$output" ] && [ -n "$shards" ] && [ $# -gt 0 ] || usage
[ -f "$sif" ] || { echo "submit.sh: $sif: no such image" >&2; exit 2; }
[[ $shards =~ ^[1-9][0-9]*$ ]] || { echo "submit.sh: --shards must be a positive integer" >&2; exit 2; }

[ "$gpus" != 0 ] && array_opts+=(--gres="gpu:$gpus")
export TS_SIF=$sif TS_OUTPUT=$output TS_SHARDS=$shards
TS_BINDS=$(IFS=,; echo "${binds[*]}"); export TS_BINDS
mkdir -p "$output/logs"

array=${tasks:-0-$((shards - 1))}${max_running:+%$max_running}
array_job=$(sbatch --parsable --array="$array" --output="$output/logs/%x-%A_%a.log" \
    "${common[@]}" "${array_opts[@]}" "$here/features-array.sbatch" "$@")
array_job=${array_job%%;*}
merge_job=$(sbatch --parsable --dependency="afterok:$array_job" --kill-on-invalid-dep=yes \
    --output="$output/logs/%x-%j.log" "${common[@]}" "$here/merge.sbatch")
merge_job=${merge_job%%;*}
echo "submit.sh: features array $array_job (tasks $array of $shards), merge $merge_job after it; logs in $output/logs" >&2
echo "$array_job $merge_job"
