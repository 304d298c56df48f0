#!/usr/bin/env bash
# One device call: bench.perf on the GPU machine, diffusers (the comparison) installed from carried wheels.
# Run in the repo root with `.whl` carried (diffusers + importlib_metadata wheels, see README):
#   RUNS=diffusers,sgi2v+ckpt_transformers,sgi2v+ckpt_transformers+compile+compile_features TAG=perf bash bench/device/perf.sh
# Writes $OUT/$TAG.json (rewritten after every run, so a call cut short keeps what finished) and $OUT/$TAG.log.
set -u -o pipefail
OUT=${OUT:?}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python -m bench.perf --out $OUT/${TAG:-perf}.json --runs ${RUNS:?} ${PERF_ARGS:-} 2>&1 | tee $OUT/${TAG:-perf}.log
