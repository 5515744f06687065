# The HTML report: every metric, the runs, the data accounting, the alignment QA.


rule report:
    input:
        **{kind: list(files.values()) for kind, files in report_inputs().items()},
    output:
        html=paths.report(),
        roc=report(
            paths.report_roc(),
            caption="../workflow/report/roc.rst",
            category="Verification",
        ),
    params:
        **report_inputs(),
    log:
        paths.log("report", "report"),
    benchmark:
        paths.benchmark("report", "report")
    threads: 1
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/report.py"
