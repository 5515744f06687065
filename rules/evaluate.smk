# Protocols on the features (evaluation/protocol.py lists the kinds).


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        report(
            paths.metrics(),
            caption="../workflow/report/metrics.rst",
            category=lambda wc: paper_category(wc.run, wc.protocol),
            subcategory="{protocol}",
            labels={"run": "{run}", "protocol": "{protocol}"},
        ),
    params:
        protocol=lambda wc: config["protocols"][wc.protocol],
        root=lambda wc: paths.extracted(config["protocols"][wc.protocol]["dataset"]),
        train_root=lambda wc: train_root(config["protocols"][wc.protocol]),
        run=lambda wc: run_settings(config["runs"][wc.run]),
    log:
        paths.log("evaluate", "{run}/{protocol}"),
    benchmark:
        paths.benchmark("evaluate", "{run}/{protocol}")
    threads: 1
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/evaluate.py"
