# Ablations: the same training job on a one-key sweep (config `ablations:`), written to
# results/ablations/{ablation}/{dataset}/{setting}/{algorithm}/{variant}/{key}-{value}/seed{seed}/.


use rule train as train_ablation with:
    output:
        f"{RESULTS}/ablations/{{ablation}}/{{dataset}}/{{setting}}/{{algorithm}}/{{variant}}/{{point}}/seed{{seed}}/metrics.json",
    log:
        f"{RESULTS}/logs/ablations/{{ablation}}/{{dataset}}/{{setting}}/{{algorithm}}/{{variant}}/{{point}}/seed{{seed}}.log",
