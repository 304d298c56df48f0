#!/usr/bin/env bash
# Put what bench/device/train_dit.sh returned back into the repository (run in the repo root):
#   bash bench/device/unpack_dit.sh FOLDER        # FOLDER holds w.tar.part.aa, w.tar.part.ab, ...
# The training state and the model replace weights/tiny/train_state_dit and weights/tiny/sgi2v-tiny-dit (refused
# if the returned state has fewer steps than the one here: an older run); the gate's JSON, text, strip and the
# training log go to bench/results/tiny_dit/<steps>steps/ (refused if that folder exists).
set -eu -o pipefail
SRC=${1:?usage: bash bench/device/unpack_dit.sh FOLDER_WITH_w.tar.part.*}
ls "$SRC"/w.tar.part.* > /dev/null || { echo "$SRC: no w.tar.part.* files" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
cat "$SRC"/w.tar.part.* | tar x -C "$TMP"
steps() { python -c "import json, sys; print(json.load(open(sys.argv[1]))['dit_steps'])" "$1"; }
NEW=$(steps "$TMP/w/state/meta.json")
if [ -f weights/tiny/train_state_dit/meta.json ]; then
  OLD=$(steps weights/tiny/train_state_dit/meta.json)
  [ "$NEW" -ge "$OLD" ] || { echo "returned state has $NEW steps, weights/tiny/train_state_dit has $OLD: not replaced" >&2; exit 1; }
fi
R=bench/results/tiny_dit/${NEW}steps
[ ! -e "$R" ] || { echo "$R exists: not overwritten" >&2; exit 1; }
rm -rf weights/tiny/train_state_dit weights/tiny/sgi2v-tiny-dit
mv "$TMP/w/state" weights/tiny/train_state_dit
mv "$TMP/w/model" weights/tiny/sgi2v-tiny-dit
mkdir -p "$R" && mv "$TMP"/w/* "$R"/
echo "DiT at $NEW steps: weights/tiny/train_state_dit, weights/tiny/sgi2v-tiny-dit; results in $R"
ls -la "$R"
