#!/usr/bin/env bash
# One device call: train the tiny world's video transformer (model/dit.py) for $DIT_MIN minutes, resuming
# from weights/tiny/train_state_dit when it exists (else from scratch), then gate it. In the repo root:
#   DIT_MIN=7 bash bench/device/train_dit.sh                 # the first call: --warmup eager steps, then a CUDA graph
#   DIT_MIN=7 LR=1.5e-4 EMA=0.9995 bash bench/device/train_dit.sh   # a later call (lr and EMA are per call)
# GRAPH="" trains eagerly and SCENES=N gates on N scenes (a CPU dry run:
#   GRAPH="" BATCH=1 PREP_CHUNK=1 WORKERS=0 LOG_EVERY=1 SCENES=1 DIT_MIN=0.2 OUT=/tmp/o bash bench/device/train_dit.sh).
# DIT_MIN=7 leaves ~2 minutes of a 9.5-minute call for the start, the gate and the tar.
# Defaults: batch 64, AdamW lr 3e-4 after 1000 warm-up steps, EMA 0.999, the U-Net's world recipe
# (--pan-prob 2.5, --p-mean 0.3, --p-std 1.6); the VAE and CLIP are sgi2v-tiny's, frozen.
# Then bench.tiny_quality on the gate's scenes (seeds 1000..) and on validation scenes (seeds 1100..), for each
# "steps:max_guidance" pair in SAMPLING (default the model config's 16:2.5; SAMPLING="" skips it).
# Everything comes back as one tar split in 15 MB parts (files of at most 16 MiB return); put it back with
#   bash bench/device/unpack_dit.sh FOLDER_WITH_THE_PARTS
set -u -o pipefail
OUT=${OUT:?}; W=$OUT/w; mkdir -p $W/state $W/model
[ -d weights/tiny/train_state_dit ] && cp -r weights/tiny/train_state_dit/. $W/state/
[ -d weights/tiny/sgi2v-tiny-dit ] && cp -r weights/tiny/sgi2v-tiny-dit/. $W/model/
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $W/gpu.txt
python -m weights.tiny.train --backbone dit --minutes ${DIT_MIN:?} ${GRAPH---cuda-graph} --batch ${BATCH:-64} --lr ${LR:-3e-4} \
  --warmup ${WARMUP:-1000} --ema ${EMA:-0.999} --pan-prob ${PAN_PROB:-2.5} --p-mean ${P_MEAN:-0.3} --p-std ${P_STD:-1.6} \
  --prep-chunk ${PREP_CHUNK:-4} --workers ${WORKERS:-8} --log-every ${LOG_EVERY:-250} --state $W/state --model-dir $W/model 2>&1 | tee $W/train.log | grep -v "^dit step"
tail -4 $W/train.log
for s in ${SAMPLING-16:2.5}; do
  steps=${s%%:*}; g=${s##*:}
  timeout ${EVAL_TIMEOUT:-240} python -m bench.tiny_quality --weights $W/model --scenes ${SCENES:-32} --steps $steps --max-guidance $g \
    --out $W/gate_${steps}_${g}.json --strip $W/strip_${steps}_${g}.png > $W/gate_${steps}_${g}.txt 2>&1 &
  timeout ${EVAL_TIMEOUT:-240} python -m bench.tiny_quality --weights $W/model --scenes ${SCENES:-32} --first-seed 1100 --steps $steps \
    --max-guidance $g --out $W/val_${steps}_${g}.json > $W/val_${steps}_${g}.txt 2>&1 &
done
wait
grep -H "seconds\|frame0_psnr\|sprites_found\|colour_error_mean\|rigid\|speed" $W/*.txt
cd $OUT && tar cf w.tar w && split -b 15M w.tar w.tar.part. && rm -rf w w.tar && ls -la $OUT
