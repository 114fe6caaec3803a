# Data: one manifest per dataset. DVC owns data/raw/ (dvc.yaml stage fetch@<dataset>); this rule
# asks DVC (or the data layer directly where dvc.yaml has no such stage) to make the dataset
# available and writes a tiny manifest of its identity/hash. Training depends on the manifest:
# a re-pull of the same data does not retrain; a changed dvc.lock entry (a real data change)
# changes the `lock` param, which reruns the manifest and so the training of that dataset.


rule dataset_manifest:
    output:
        f"{RESULTS}/data/{{dataset}}.manifest.json",
    params:
        lock=lambda wildcards: pipeline.dvc_lock_entry(wildcards.dataset),
        root=config["data_root"],
    log:
        f"{RESULTS}/logs/data/{{dataset}}.log",
    resources:
        dvc=1,  # parallel DVC calls fight over DVC's lock: the default profile sets dvc=1
    shell:
        "python -m trlearner.pipeline fetch-data {wildcards.dataset} --data-root {params.root} "
        "--out {output} > {log} 2>&1"
