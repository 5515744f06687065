# One trained model per run; checkpoints are a param, so Snakemake never deletes them.


rule train:
    input:
        unpack(train_inputs),
    output:
        model=paths.model(),
        info=paths.model_info(),
    params:
        run=lambda wc: run_settings(config["runs"][wc.run]),
        checkpoints=lambda wc: paths.checkpoints(wc.run),
        root=lambda wc: paths.extracted(config["runs"][wc.run]["train"]),
        device=config["device"],
    resources:
        gpu=train_gpus,
    log:
        paths.log("train", "{run}"),
    benchmark:
        paths.benchmark("train", "{run}")
    threads: compute_threads
    priority: PRIORITY_TRAIN
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/train.py"
