# Protocols on the features: LFW-style k-fold verification, LFW identification.


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        paths.metrics(),
    params:
        protocol=lambda wc: config["protocols"][wc.protocol],
        root=lambda wc: paths.extracted(config["protocols"][wc.protocol]["dataset"]),
    log:
        paths.log("evaluate", "{run}/{protocol}"),
    benchmark:
        paths.benchmark("evaluate", "{run}/{protocol}")
    threads: 1
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/evaluate.py"
