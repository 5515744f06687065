# Embeddings of an evaluation set (all images, or one split): original and flipped face.


rule features:
    input:
        model=paths.model(),
        shard=lambda wc: aligned_shard(wc.evalset, config["runs"][wc.run]["template"]),
    output:
        paths.features(),
    params:
        split=lambda wc: None if wc.subset == "all" else wc.subset,
        layers=lambda wc: config["runs"][wc.run]["feature_layers"],
        flip_merge=lambda wc: config["runs"][wc.run]["flip_merge"],
        device=config["device"],
    resources:
        gpu=gpus_per_job(1),
    log:
        paths.log("features", "{run}/{evalset}/{subset}"),
    benchmark:
        paths.benchmark("features", "{run}/{evalset}/{subset}")
    threads: workflow.cores
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/features.py"
