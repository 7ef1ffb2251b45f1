#!/usr/bin/env bash
# Renders resources/models/default.{dmvb,md,cv.json,oof.h5} from the runs named below (run from the repo root
# once they exist: they are not in git). Sections that are not written yet are left out.
set -e
cd "$(dirname "$0")/../../.."
ABL=(--ablation "EfficientNet-Lite0 classifier, fine-tuned (floor)=runs/ablation_floor_lite0")
ABL+=(--ablation "D: disease head only=runs/ablation_d")
ABL+=(--ablation "D+LSM=runs/ablation_d_lsm2")
[ -f runs/ablation_concat/metrics.json ] && ABL+=(--ablation "D+B+A, LSM, concatenation=runs/ablation_concat")
ABL+=(--ablation "D+B+A, LSM, CIM, task weights all 1.0 (first default)=runs/cpu_default_cv")
ABL+=(--ablation "D+B+A, LSM, CIM, auxiliary weights 0.3, no corruption augmentation=runs/cpu_default_aux03")
ABL+=(--ablation "D+B+A, LSM, CIM, auxiliary weights 0.3, S&P/blur augmentation (this model)=runs/cpu_default_robust")
SEC=(--section "Reading of the results=configs/cards/default/reading.md" --section "How the recipe was chosen=configs/cards/default/tuning.md")
[ -f configs/cards/default/robustness.md ] && SEC+=(--section "Robustness (Mishra et al. Table 5 form, on the CV folds)=configs/cards/default/robustness.md")
[ -f configs/cards/default/speed.md ] && SEC+=(--section "Speed on this 2-core CPU=configs/cards/default/speed.md")
[ -f configs/cards/default/student.md ] && SEC+=(--section "Distilled student=configs/cards/default/student.md")
.venv/bin/dermviewer-train ship runs/cpu_default_robust --name default --model-name dermimitformer-lite0-pad20 \
  --title "dermimitformer-lite0-pad20: DermImitFormer heads on an EfficientNet-Lite0 stem, PAD-UFES-20 (CPU default)" \
  --command "$(printf '%s\n' \
    '.venv/bin/dermviewer-train cv configs/cpu_default_robust.yaml --set train.threads=1 --out runs/cpu_default_robust   # this model' \
    '.venv/bin/dermviewer-train cv configs/cpu_default.yaml --set train.threads=1 --out runs/cpu_default_aux03' \
    '.venv/bin/dermviewer-train cv configs/baselines/lite0.yaml --set train.threads=1 --set cv.final_fit=false --out runs/ablation_floor_lite0' \
    '.venv/bin/dermviewer-train cv configs/ablation/cpu/d.yaml --set train.threads=1 --set cv.final_fit=false --out runs/ablation_d' \
    '.venv/bin/dermviewer-train cv configs/ablation/cpu/d_lsm.yaml --set train.threads=1 --set cv.final_fit=false --out runs/ablation_d_lsm2' \
    '.venv/bin/dermviewer-train cv configs/ablation/cpu/d_b_a_lsm_concat.yaml --set train.threads=1 --set cv.final_fit=false --out runs/ablation_concat' \
    '.venv/bin/dermviewer-train cv configs/cpu_default.yaml --set train.threads=1 --set loss.weights.body_part=1.0 --set loss.weights.attributes=1.0 --out runs/cpu_default_cv' \
    '.venv/bin/dermviewer-train robustness-cv configs/cpu_default.yaml --run clean=runs/cpu_default_aux03 --run "S&P/blur augmented=runs/cpu_default_robust" --out runs/robustness_cv' \
    '.venv/bin/python benchmarks/bench_shipped_models.py --table3 configs/cards/student/table3.md   # latency, int8 agreement, student trade-off' \
    'bash configs/cards/default/ship.sh   # this card (figures checked by tests/training/test_model_card.py)')" \
  --description "The app's default model: DermImitFormer (Zhou et al., MICCAI 2023) task heads for disease, body part and attributes with the Lesion Selection Module (K=8 of 100 tokens) and the Cross-Interaction Module, on an ImageNet-pretrained EfficientNet-Lite0 stem cut at stride 16 (160 px input, 10x10 tokens, 2 shared + 2x3 head transformer layers of width 192; 5.2 M parameters; fp16 weights). Loss weights: disease and fused disease 1.0, body part and attributes 0.3; a third of the training crops get salt-and-pepper noise or blur. Trained on CPU by this project's training package; the final model is fitted on all 666 photos with the recipe that was cross-validated. A distilled student for slow machines ships beside it (student.md)." \
  "${ABL[@]}" "${SEC[@]}" \
  --failure-mode "Rare classes: out-of-fold recall is 7% for squamous cell carcinoma (2 of 28 photos; most are called actinic keratosis or basal cell carcinoma) and 54% for melanoma (19 of 35); both are malignant. Do not rely on the model to flag them." \
  --failure-mode "Seborrheic keratosis is recalled 38% of the time (42 of 112), confused with nevi (24), actinic keratosis (19) and melanoma (17)." \
  --failure-mode "Malignant vs benign (sum of the malignant class probabilities >= 0.5): sensitivity 72.8 ± 4.7%, specificity 75.1 ± 6.8% over folds; about one malignant lesion in four is called benign." \
  --failure-mode "Probabilities are over-confident (ECE 12.1 ± 3.8% over folds): read them as a ranking, not as calibrated risks." \
  --failure-mode "Body part from a close-up photo is weak: top-1 31% out of fold over 14 regions, against 22% for always answering face." \
  --failure-mode "Attributes are what patients reported (itch, growth, pain, change, bleeding, elevation); most are not visible in a photo." \
  --failure-mode "Noise and blur change its answers: under 5% salt-and-pepper noise 43% of top-1 diagnoses flip, under a 5x5 blur 18% (robustness section)." \
  --failure-mode "Trained on one Brazilian clinic's smartphone photos (mostly Fitzpatrick I-III); dermoscopic images, other skin types, other devices and diseases outside the six classes are out of scope: the model always answers with one of the six."
