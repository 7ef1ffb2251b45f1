#!/usr/bin/env bash
# Renders resources/models/student.{dmvb,md,cv.json,oof.h5} from the runs named below (run from the repo root
# once they exist: they are not in git). Sections that are not written yet are left out.
set -e
cd "$(dirname "$0")/../../.."
ABL=(--ablation "Teacher: the default (D+B+A, LSM, CIM; 2+2x3 layers, 160 px)=runs/cpu_default_robust")
ABL+=(--ablation "Student (this model; 1+1x3 layers, 128 px)=runs/cpu_student")
SEC=()
for part in table3 reading; do
  [ -f "configs/cards/student/$part.md" ] && SEC+=(--section "$(head -1 "configs/cards/student/$part.title")=configs/cards/student/$part.md")
done
.venv/bin/dermviewer-train ship runs/cpu_student --name student --model-name dermimitformer-lite0-pad20-student \
  --title "dermimitformer-lite0-pad20-student: the default model distilled for slow machines" \
  --command "$(printf '%s\n' \
    '.venv/bin/dermviewer-train cv configs/cpu_default_robust.yaml --set train.threads=1 --out runs/cpu_default_robust   # the teacher' \
    '.venv/bin/dermviewer-train cv configs/cpu_student.yaml --set train.threads=1 --set distill.wait_for_teacher=true --out runs/cpu_student   # this model' \
    '.venv/bin/python benchmarks/bench_shipped_models.py --table3 configs/cards/student/table3.md   # speed and the trade-off table' \
    'bash configs/cards/student/ship.sh   # this card (figures checked by tests/training/test_model_card.py)')" \
  --description "A SkinDistilViT-style student (Sousa & Ambrosio, 2023) of the default model for slow machines: the same DermImitFormer heads (disease, body part, attributes; LSM K=8, CIM) on the same ImageNet EfficientNet-Lite0 stem, with half the transformer layers (1 shared + 1 per head instead of 2 + 2) and a 128 px input instead of 160 (8x8 tokens), about 2.5x fewer FLOPs. In every fold it is seeded from that fold's teacher (kept layers copied, position embedding resampled) and trained with the task loss plus 0.5 x soft cross-entropy to the teacher at T = 2, on the same folds and with the same recipe, so its CV figures compare one to one with the teacher's. The final student is distilled from the shipped default on all 666 photos. Pick it in the app under Model > Bundled models, or start with dermviewer --model student." \
  "${ABL[@]}" "${SEC[@]}" \
  --failure-mode "Everything in the default model's card (default.md) applies: rare malignant classes (SCC 28, MEL 35 photos) are seldom recalled, probabilities are over-confident, body part and attributes are weak." \
  --failure-mode "At 128 px it sees less detail than the default: prefer the default wherever its speed is acceptable."
