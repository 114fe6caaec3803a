# Data: one manifest per dataset. DVC owns data/raw/ (dvc.yaml stage fetch@<dataset>, one per
# registry dataset); this rule asks DVC to make the dataset available (restore from the remote,
# else fetch; no fetch outside DVC: a dataset that cannot be fetched fails this job with the fetch
# error) and writes a tiny manifest of its identity/hash. Training depends on the manifest(s) of
# every dataset it reads (cross-domain cells: the training and the test dataset):
# a re-pull of the same data does not retrain; a changed dvc.lock entry (a real data change)
# changes the `lock` param, which reruns the manifest and so the training of that dataset.
from trlearner.pipeline.dvc import dvc_lock_entry


rule dataset_manifest:
    output:
        f"{RESULTS}/data/{{dataset}}.manifest.json",
    params:
        lock=lambda wildcards: dvc_lock_entry(wildcards.dataset),
        root=config["data_root"],
    log:
        f"{RESULTS}/logs/data/{{dataset}}.log",
    resources:
        dvc=1,  # parallel DVC calls fight over DVC's lock: the default profile sets dvc=1
    shell:
        "python -m trlearner.pipeline fetch-data {wildcards.dataset:q} --data-root {params.root:q} "
        "--out {output:q} > {log:q} 2>&1"
