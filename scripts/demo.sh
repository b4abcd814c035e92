#!/usr/bin/env bash
# The main job on the embedded defaults: set up, build the default model, index cats and dogs
# from ../shared/datasets, teach it raccoons, classify some frames, and write an evaluation report.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${KENNELGATE_DATASETS:-../shared/datasets}
export KENNELGATE_HOME=${KENNELGATE_HOME:-kennelgate-home}
bash scripts/setup.sh
KG=.venv/bin/kennelgate
WORK=$KENNELGATE_HOME/demo
rm -rf "$WORK"; mkdir -p "$WORK/gallery" "$WORK/test"
# Gallery: the first 800 cats and dogs; test: the rest + animals and objects never indexed.
for s in cat dog; do
  mkdir -p "$WORK/gallery/$s" "$WORK/test/$s"
  ls "$DATA/catsdogs/$s" | sort -V | head -800 | while read -r f; do ln -s "$(realpath "$DATA/catsdogs/$s/$f")" "$WORK/gallery/$s/$f"; done
  ls "$DATA/catsdogs/$s" | sort -V | tail -200 | while read -r f; do ln -s "$(realpath "$DATA/catsdogs/$s/$f")" "$WORK/test/$s/$f"; done
done
mkdir -p "$WORK/test/unknown" "$WORK/raccoon"
for d in others others_objects; do for f in "$DATA/$d"/*; do ln -s "$(realpath "$f")" "$WORK/test/unknown/"; done; done
ls "$DATA/raccoon" | sort -V | head -98 | while read -r f; do ln -s "$(realpath "$DATA/raccoon/$f")" "$WORK/raccoon/$f"; done

# The head count's animal detector (npm package @mediapipe/objectron, hash checked); without npm the
# door still works, with the head count off.
$KG model build detector || echo "animal detector not installed: head count off"
$KG gallery build "$WORK/gallery"
$KG gallery add raccoon "$WORK/raccoon"
$KG gallery list
$KG health show  # the health gate's learned fault detectors (docs/health_gate.md)
$KG classify "$DATA/catsdogs/cat/cat.999.jpg" "$DATA/catsdogs/dog/dog.999.jpg" "$DATA/raccoon/raccoon-200.jpg" \
  "$DATA/others/n02119789_kit_fox.JPEG" "$DATA/others_objects/n02666196_abacus.JPEG" "$DATA/badfiles"
# The evaluation, and the same test through five camera faults at severity 3 (health gate +
# door window; the full 13 × 5 suite: scripts/corruption_suite.py, docs/corruptions.md).
$KG eval --gallery "$WORK/gallery" --test "$WORK/test" --report "$KENNELGATE_HOME/report" \
  --corruptions --only dark,night_ir,fog,mud,motion_blur --severities 3
echo "reports: $KENNELGATE_HOME/report/report.md, $KENNELGATE_HOME/report/corruptions.md"
