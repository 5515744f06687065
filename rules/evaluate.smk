# Verification protocols on the features (LFW-style k-fold over pairs.txt).


rule evaluate:
    input:
        features=lambda wc: paths.features(wc.run, config["protocols"][wc.protocol]["dataset"]),
        extracted=lambda wc: paths.extracted_marker(config["protocols"][wc.protocol]["dataset"]),
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
