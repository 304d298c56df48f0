#!/usr/bin/env bash
# One device call: resume the tiny model's training, then gate it. Run in the repo root on the GPU machine:
#   DECODER_MIN=1.5 UNET_MIN=5 [PAN_PROB=2] [P_MEAN=1.0] bash bench/device/train_and_gate.sh
#   VAE_MIN=5 DECODER_MIN=3.4 SAMPLING="" bash bench/device/train_and_gate.sh   # the whole VAE, then its decoder
#   P_MEAN=1.0 PAN_PROB=5 UNET_MIN=7.8 SAMPLING="" PAN_PROBE=16 bash bench/device/train_and_gate.sh  # + bench.pan_probe
# Trains copies of weights/tiny/train_state and weights/tiny/sgi2v-tiny under $OUT, then runs
# bench.tiny_quality on the gate's scenes (seeds 1000..) and on validation scenes (seeds 1100..) for each
# sampling setting in SAMPLING ("steps:max_guidance" pairs), all at once. Everything comes back as one
# tar split in 15 MB parts (the device returns files of at most 16 MB).
set -u
OUT=${OUT:?}; W=$OUT/w; mkdir -p $W
cp -r weights/tiny/train_state $W/state && cp -r weights/tiny/sgi2v-tiny $W/model
LOG=$W/train.log
T="--state $W/state --model-dir $W/model"
if [ "${VAE_MIN:-0}" != 0 ]; then                       # the whole VAE: a new encoder, so the latent space drifts
  python -m weights.tiny.train --stage vae --minutes $VAE_MIN --vae-batch ${VAE_BATCH:-32} --lr-vae ${LR_VAE:-2e-4} \
    --colour-weight ${COLOUR_WEIGHT:-1} ${PAN_PROB:+--pan-prob $PAN_PROB} --log-every 100 $T 2>&1 | tee -a $LOG | tail -3
fi
if [ "${DECODER_MIN:-0}" != 0 ]; then
  python -m weights.tiny.train --stage decoder --minutes $DECODER_MIN --vae-batch 32 --lr-vae ${LR_VAE:-1e-4} \
    --colour-weight ${COLOUR_WEIGHT:-1} ${PAN_PROB:+--pan-prob $PAN_PROB} $T 2>&1 | tee -a $LOG | tail -3
fi
if [ "${VAE_MIN:-0}${DECODER_MIN:-0}" != 00 ]; then     # what the VAE carries now, and how far its latents moved
  python -m bench.vae_recon --scenes 32 --weights $W/model --reference weights/tiny/sgi2v-tiny --out $W/recon.json | tail -1
fi
if [ "${UNET_MIN:-0}" != 0 ]; then
  python -m weights.tiny.train --stage unet --minutes $UNET_MIN --cuda-graph --batch ${BATCH:-64} --lr ${LR:-5e-5} \
    --ema ${EMA:-0.9995} ${PAN_PROB:+--pan-prob $PAN_PROB} ${P_MEAN:+--p-mean $P_MEAN} --log-every 250 $T 2>&1 | tee -a $LOG | tail -3
fi
# SAMPLING="" skips the evaluation (32 scenes also take 83-100 s on a 2-core CPU). 12 processes at once
# outran a 150 s limit on an H200 machine: hence the default EVAL_TIMEOUT of 400 s.
for s in ${SAMPLING-16:2.5}; do
  steps=${s%%:*}; g=${s##*:}
  timeout ${EVAL_TIMEOUT:-400} python -m bench.tiny_quality --weights $W/model --scenes 32 --steps $steps --max-guidance $g \
    --out $W/gate_${steps}_${g}.json --strip $W/strip_${steps}_${g}.png > $W/gate_${steps}_${g}.txt 2>&1 &
  timeout ${EVAL_TIMEOUT:-400} python -m bench.tiny_quality --weights $W/model --scenes 32 --first-seed 1100 --steps $steps --max-guidance $g \
    --out $W/val_${steps}_${g}.json > $W/val_${steps}_${g}.txt 2>&1 &
done
wait
if [ -n "${PAN_PROBE:-}" ]; then                       # can the model pan now? (bench/pan_probe.py)
  python -m bench.pan_probe --weights $W/model --scenes $PAN_PROBE --out $W/pan_probe.json 2>&1 | tail -3
fi
grep -H "frame0_psnr_mean\|vae_frame0\|rigid\|colour_error\|speed_corr" $W/*.txt
cd $OUT && tar cf w.tar w && split -b 15M w.tar w.tar.part. && rm -rf w w.tar && ls -la $OUT
