# Embeddings of an evaluation set as a view names it (all images or one split, the run's crop or
# another, degraded or not): original and flipped face.


rule features:
    input:
        model=paths.model(),
        shard=lambda wc: aligned_shard(wc.evalset, view_template(wc.run, wc.view)),
    output:
        paths.features(),
    params:
        layers=lambda wc: config["runs"][wc.run]["feature_layers"],
        flip_merge=lambda wc: config["runs"][wc.run]["flip_merge"],
        imbalance=lambda wc: config["runs"][wc.run].get("imbalance"),
        device=config["device"],
    resources:
        gpu=lambda wc: gpus_per_job(1),
    log:
        paths.log("features", "{run}/{evalset}/{view}"),
    benchmark:
        paths.benchmark("features", "{run}/{evalset}/{view}")
    threads: compute_threads
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/features.py"
