# Embeddings of an evaluation set: original and flipped face, concatenated.


rule features:
    input:
        model=paths.model(),
        shard=lambda wc: aligned_shard(wc.evalset, config["runs"][wc.run]["template"]),
    output:
        paths.features(),
    params:
        device=config["device"],
    log:
        paths.log("features", "{run}/{evalset}"),
    benchmark:
        paths.benchmark("features", "{run}/{evalset}")
    threads: workflow.cores
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/features.py"
