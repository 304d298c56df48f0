#!/usr/bin/env bash
# One device call: bench.objmc_tiny with one process per group of variants (the tiny model is launch-bound,
# so processes side by side fill the GPU). Groups are separated by spaces, variants in a group by commas;
# the first group also writes the frame strip. Run in the repo root on the GPU machine:
#   GROUPS_="none,tiny sgi2v" FIRST_SEED=3000 bash bench/device/objmc_parallel.sh
#   GROUPS_="none,tiny" SCENES=128 SHARDS=16 FIRST_SEED=11000 bash bench/device/objmc_parallel.sh
# SHARDS=N splits every group's tasks into N processes (--shard i/N; join them with --pool).
# WEIGHTS names a model folder (default: the shipped tiny model), STEPS overrides the model's Euler steps, STRIP=0 skips the strip, TAG names the results (default objmc).
# Everything comes back as $OUT/$TAG.tar (per-group JSON and logs).
set -u
OUT=${OUT:?}; TAG=${TAG:-objmc}; R=$OUT/$TAG; mkdir -p $R
N=${SHARDS:-1}; i=0
for g in ${GROUPS_:?}; do
  for ((s = 0; s < N; s++)); do
    extra=""; [ $i = 0 ] && [ $s = 0 ] && [ "${STRIP:-1}" = 1 ] && extra="--strip $R/strip.png"
    [ -n "${STEPS:-}" ] && extra="$extra --steps $STEPS"
    [ -n "${WEIGHTS:-}" ] && extra="$extra --weights $WEIGHTS"
    name=group$i; [ $N != 1 ] && name=group${i}_shard$s
    timeout ${LIMIT:-560} python -m bench.objmc_tiny --scenes ${SCENES:-32} --first-seed ${FIRST_SEED:-3000} \
      --shard $s/$N --variants $g --device cuda --threads 1 --out $R/$name.json $extra > $R/$name.log 2>&1 &
  done
  i=$((i + 1))
done
wait
grep -h "ObjMC " $R/group*.log
cd $OUT && tar cf $TAG.tar $TAG && rm -rf $TAG
