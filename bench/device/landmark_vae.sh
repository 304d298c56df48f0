#!/usr/bin/env bash
# One device call: teach the tiny model's VAE the background landmarks, two ways side by side, keep the better,
# then train the U-Net on it. Run in the repo root on the GPU machine:
#   VAE_MIN=3.5 UNET_MIN=3.5 bash bench/device/landmark_vae.sh
# Branch "decoder": the decoder only (the encoder, hence the U-Net's latent space, unchanged).
# Branch "vae": the whole VAE (a new encoder and scaling factor; the U-Net has to follow the latent drift).
# Both start from weights/tiny, run at once on the one GPU, and are measured with bench.vae_recon against the
# shipped model. The rule, fixed before the run: keep the branch whose landmarks come through more
# (landmark_kept), unless its sprites lose more than 1 dB against the shipped VAE (then the other).
# The kept branch's U-Net then trains for UNET_MIN minutes (PAN_PROB as the pan training). Everything comes
# back as one tar of parts of at most 15 MB.
set -u
OUT=${OUT:?}; W=$OUT/w; mkdir -p $W
for b in decoder vae; do
  mkdir -p $W/$b && cp -r weights/tiny/train_state $W/$b/state && cp -r weights/tiny/sgi2v-tiny $W/$b/model
  python -m weights.tiny.train --stage $b --minutes ${VAE_MIN:-3.5} --vae-batch 32 --lr-vae ${LR_VAE:-2e-4} \
    --colour-weight 1 --landmark-weight ${LANDMARK_WEIGHT:-4} --pan-prob ${PAN_PROB:-2.5} --log-every 100 \
    --state $W/$b/state --model-dir $W/$b/model > $W/$b/train.log 2>&1 &
done
wait
python -m bench.vae_recon --scenes 32 --out $W/recon_shipped.json
for b in decoder vae; do
  tail -2 $W/$b/train.log
  python -m bench.vae_recon --scenes 32 --weights $W/$b/model --reference weights/tiny/sgi2v-tiny --out $W/recon_$b.json
done
KEEP=$(python - "$W" <<'EOF'
import json, sys
w = sys.argv[1]
ship = json.load(open(f"{w}/recon_shipped.json"))
r = {b: json.load(open(f"{w}/recon_{b}.json")) for b in ("decoder", "vae")}
ok = [b for b in r if r[b]["psnr_sprites"] >= ship["psnr_sprites"] - 1.0] or list(r)
print(max(ok, key=lambda b: r[b]["landmark_kept"]))
EOF
)
echo "kept branch: $KEEP" | tee $W/kept.txt
if [ "${UNET_MIN:-0}" != 0 ]; then
  python -m weights.tiny.train --stage unet --minutes $UNET_MIN --cuda-graph --batch ${BATCH:-64} --lr ${LR:-5e-5} \
    --ema ${EMA:-0.9995} --pan-prob ${PAN_PROB:-2.5} --log-every 250 --state $W/$KEEP/state --model-dir $W/$KEEP/model \
    2>&1 | tee -a $W/$KEEP/train.log | tail -3
fi
cd $OUT && tar cf w.tar w && split -b 15M w.tar w.tar.part. && rm -rf w w.tar && ls -la $OUT
