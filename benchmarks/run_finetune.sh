#!/usr/bin/env bash
# The finetune benchmarks of issue 17: the exact commands that wrote benchmarks/results/*_finetune* and
# finetune_recipe_*. One thread per job; the recipe (learning rate) was fixed on a validation split of each
# modality's pool before any method was compared (finetune_recipe_*.md), then frozen in
# bilaf.evaluation.cached_finetune.RECIPES.
#   benchmarks/run_finetune.sh data      # CLINC150 text files, text features (MiniLM), CIFAR-10 feature files
#   benchmarks/run_finetune.sh recipe    # learning rate on a validation split (TREC-6 for texts, CIFAR-10 images)
#   benchmarks/run_finetune.sh trec6 | clinc150 | cifar10 | cifar10_50k
#   benchmarks/run_finetune.sh paired    # paired differences against default BiLAF -> finetune_paired.md
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
DATA=../shared/data
TXT=${TEXT_FEATS:-/tmp/bilaf-text}
C10=${C10_FEATS:-/tmp/bilaf-c10}
OUT=benchmarks/results
BILAF=${BILAF:-bilaf}

data() {
    mkdir -p "$TXT"
    python benchmarks/data/make_clinc150.py "$DATA/text/clinc150/data_full.json" --out "$TXT"
    for pair in trec6/TREC.train.all:trec6_train trec6/TREC.test.all:trec6_test; do
        [ -f "$TXT/${pair##*:}.npz" ] || $BILAF embed "$DATA/text/${pair%%:*}" --out "$TXT/${pair##*:}.npz" --device cpu -q
    done
    for s in train test; do
        [ -f "$TXT/clinc150_$s.npz" ] || $BILAF embed "$TXT/clinc150_$s.txt" --label-column first --out "$TXT/clinc150_$s.npz" --device cpu -q
    done
    python benchmarks/data/make_cifar10_features.py "$DATA/cifar10" --out "$C10"
}

recipe() {
    python benchmarks/finetune_recipe.py "$TXT/trec6_train.npz" --budgets 0.02,0.05 --lrs 3e-5,1e-4,3e-4 \
        --seeds 2 --out "$OUT/finetune_recipe_trec6.md"
    python benchmarks/finetune_recipe.py "$C10/cifar10_train.npz" --budgets 0.005,0.01 --lrs 1e-3,3e-3,1e-2 \
        --seeds 2 --max-val 2000 --out "$OUT/finetune_recipe_cifar10.md"
    # the best of those was the lowest: two lower rates, then one lower still
    python benchmarks/finetune_recipe.py "$C10/cifar10_train.npz" --budgets 0.005,0.01 --lrs 3e-4,1e-3 \
        --seeds 2 --max-val 2000 --out "$OUT/finetune_recipe_cifar10_low.md"
    python benchmarks/finetune_recipe.py "$C10/cifar10_train.npz" --budgets 0.005,0.01 --lrs 1e-4,3e-4 \
        --seeds 2 --max-val 2000 --out "$OUT/finetune_recipe_cifar10_lower.md"
}

trec6() {
    python benchmarks/finetune_grid.py "$TXT/trec6_train.npz" "$TXT/trec6_test.npz" --budgets 1%,2%,5%,10% \
        --seeds 5 --paper-k 0.001 --title "TREC-6 under finetuning (pool 5,452, MiniLM)" \
        --name trec6_finetune --out "$OUT"
}

clinc150() {
    python benchmarks/finetune_grid.py "$TXT/clinc150_train.npz" "$TXT/clinc150_test.npz" --budgets 1%,2%,5%,10% \
        --seeds 5 --paper-k 0.005 --title "CLINC150 under finetuning (pool 15,000, 150 intents, MiniLM)" \
        --name clinc150_finetune --out "$OUT"
}

cifar10() {  # a 10,000-row pool (seed 0) at the paper's label counts (0.5 / 1 / 2% of 50,000)
    python benchmarks/finetune_grid.py "$C10/cifar10_train.npz" "$C10/cifar10_test.npz" --subsample 10000 \
        --budgets 250,500,1000 --seeds 5 --paper-k 50 \
        --title "CIFAR-10 under finetuning (pool 10,000 of 50,000, EfficientNet-Lite0)" \
        --name cifar10_finetune --out "$OUT"
}

cifar10_50k() {  # the full 50,000-image pool at the paper's 0.5 / 1 / 2% (250 / 500 / 1,000 labels)
    # It ran as five one-thread jobs, split by budget and seed (runs cifar10_50k_finetune_{D,E,F,G,H}):
    #   D: --budgets 500 --seeds 0-2   E: --budgets 500 --seeds 3-4   F: --budgets 1000 --seeds 0-4 (stopped
    #   after seed 2)   G: --budgets 250 --seeds 0-4   H: --budgets 1000 --seeds 3-4
    # then merge_runs.py made one runs file and this command wrote the tables from it (nothing left to run). The
    # part files were removed after the merge (D, E and G are in git history, F and H were never committed).
    # Without the part files it runs the whole grid in one job (the five jobs' runs add up to 8.0 hours of
    # selection and evaluation, two jobs at a time on this 2-core machine).
    local part
    if [ -f "$OUT/cifar10_50k_finetune_D_runs.csv" ]; then
        python benchmarks/analysis/merge_runs.py "$OUT/cifar10_50k_finetune_runs.csv" \
            "$OUT/cifar10_50k_finetune_D_runs.csv" "$OUT/cifar10_50k_finetune_E_runs.csv" \
            "$OUT/cifar10_50k_finetune_F_runs.csv:0-2" "$OUT/cifar10_50k_finetune_G_runs.csv" \
            "$OUT/cifar10_50k_finetune_H_runs.csv:3-4"
        for part in D E F G H; do rm -f "$OUT/cifar10_50k_finetune_$part".{md,csv} "$OUT/cifar10_50k_finetune_${part}_runs.csv"; done
    fi
    python benchmarks/finetune_grid.py "$C10/cifar10_train.npz" "$C10/cifar10_test.npz" \
        --budgets 250,500,1000 --seeds 5 --paper-k 50 \
        --title "CIFAR-10 under finetuning (pool 50,000, EfficientNet-Lite0)" \
        --name cifar10_50k_finetune --out "$OUT"
}

paired() {  # the paper's K is one setting named per pool (0.1% of TREC-6, 0.5% of CLINC150, 50 cores on CIFAR-10);
    # CIFAR-10 is the full 50,000-image pool (the 10,000-image pool of cifar10_finetune is a table of its own)
    local alias="--alias bilaf:n_cores=0.001=bilaf:paper_K --alias bilaf:n_cores=0.005=bilaf:paper_K --alias bilaf:n_cores=50=bilaf:paper_K"
    python benchmarks/analysis/paired_report.py trec6_finetune clinc150_finetune cifar10_50k_finetune --protocol finetune \
        $alias --min-seeds 3 --out finetune_paired --title "Default BiLAF against every method, seed by seed (finetuning)"
    python benchmarks/analysis/paired_report.py trec6_finetune clinc150_finetune cifar10_50k_finetune --protocol linear \
        $alias --min-seeds 3 --out finetune_paired_linear \
        --title "Default BiLAF against every method, seed by seed (linear probe, same selections)"
    # what MaxHerding as the default would give (BiLAF with MaxHerding cores is MaxHerding when K is the budget)
    python benchmarks/analysis/paired_report.py trec6_finetune clinc150_finetune cifar10_50k_finetune --protocol finetune \
        $alias --min-seeds 3 --default maxherding --out finetune_paired_maxherding \
        --title "MaxHerding against every method, seed by seed (finetuning)"
}

"$@"
