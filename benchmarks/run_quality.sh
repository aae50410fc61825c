#!/usr/bin/env bash
# Quality benchmarks: the exact commands that wrote benchmarks/results/{cifar10,trec6,sst2}.{md,csv,png}
# and their *_runs.csv (every run). Run from the repository root, with ../shared beside it:
#
#   benchmarks/run_quality.sh cifar10      # CIFAR-10 (pool = the 50,000 training images, test = the 10,000)
#   benchmarks/run_quality.sh text         # TREC-6 and SST-2 (embeds the texts into $TEXT_FEATS first)
#
# Environment: DEVICE (cpu, cuda; default cpu), BILAF (the command; default "bilaf"), NICE (default "nice -n 10").
# Every bench is resumable (--resume): a run that was stopped, or whose runs were made partly on
# another machine (the committed CIFAR-10 runs: most on an H100, the rest on the 2-core CPU machine),
# continues from benchmarks/results/<name>_runs.csv; the tables and plot are rewritten from all runs.
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE=${DEVICE:-cpu}
BILAF=${BILAF:-bilaf}
NICE=${NICE:-nice -n 10}
DATA=../shared/data
OUT=benchmarks/results
TEXT_FEATS=${TEXT_FEATS:-/tmp/bilaf-text-features}
mkdir -p "$OUT"

cifar10() {
    # 7 methods with their defaults, plus BiLAF with the paper's K = 50 cores (0.1% of N) at every budget.
    $NICE $BILAF bench $DATA/cifar10/effnet-lite0/train_features.npy \
        --test $DATA/cifar10/effnet-lite0/test_features.npy \
        --methods random,kcenter,kmeans,typiclust,probcover,activeft,bilaf,bilaf:n_cores=50 \
        --budgets 0.5%,1%,2%,5% --seeds 5 --protocols linear,knn --linear-solver torch \
        --device "$DEVICE" --title "CIFAR-10 (EfficientNet-Lite0 features)" --name cifar10 --out "$OUT" --resume
}

cifar10_ablation() {
    # Why BiLAF does (not) beat ActiveFT: number of cores, feature normalisation, denoising.
    $NICE $BILAF bench $DATA/cifar10/effnet-lite0/train_features.npy \
        --test $DATA/cifar10/effnet-lite0/test_features.npy \
        --methods activeft,bilaf,bilaf:n_cores=50,bilaf:n_cores=50,normalize=true,bilaf:n_cores=50,denoise=none,bilaf:normalize=true,bilaf:denoise=none \
        --budgets 0.5%,1%,2%,5% --seeds 3 --protocols linear,knn --linear-solver torch \
        --device "$DEVICE" --title "CIFAR-10: BiLAF variants" --name cifar10_ablation --out "$OUT" --resume
}

embed_texts() {
    mkdir -p "$TEXT_FEATS"
    export HF_HUB_OFFLINE=1
    for pair in trec6/TREC.train.all:trec6_train trec6/TREC.test.all:trec6_test \
                sst2/stsa.binary.train:sst2_train sst2/stsa.binary.test:sst2_test; do
        src=${pair%%:*}; dst=${pair##*:}
        [ -f "$TEXT_FEATS/$dst.npz" ] || $NICE $BILAF embed "$DATA/text/$src" --out "$TEXT_FEATS/$dst.npz" --device cpu
    done
}

text() {
    embed_texts
    for name in trec6 sst2; do
        case $name in trec6) title="TREC-6 (all-MiniLM-L6-v2 features)";; sst2) title="SST-2 (all-MiniLM-L6-v2 features)";; esac
        $NICE $BILAF bench "$TEXT_FEATS/${name}_train.npz" --test "$TEXT_FEATS/${name}_test.npz" \
            --methods random,kcenter,kmeans,typiclust,probcover,activeft,bilaf \
            --budgets 1%,2%,5%,10% --seeds 5 --protocols linear,knn --linear-solver torch \
            --device "$DEVICE" --title "$title" --name "$name" --out "$OUT" --resume
    done
}

case "${1:-all}" in
    cifar10) cifar10 ;;
    cifar10_ablation) cifar10_ablation ;;
    text) text ;;
    all) cifar10; cifar10_ablation; text ;;
    *) echo "usage: $0 [cifar10|cifar10_ablation|text|all]" >&2; exit 2 ;;
esac
