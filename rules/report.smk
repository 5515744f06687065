# The HTML report: every metric, the runs, the data accounting, the alignment QA.


rule report:
    input:
        metrics=list(all_metrics().values()),
        models=[paths.model_info(run) for run in config["runs"]],
        manifests=[paths.manifest(d) for d, _ in needed_shards()],
        qa=[paths.aligned_qa(d, t) for d, t in needed_shards()],
    output:
        html=paths.report(),
        roc=report(
            paths.report_roc(),
            caption="../workflow/report/roc.rst",
            category="Verification",
        ),
    params:
        metrics=all_metrics(),
        models={run: paths.model_info(run) for run in config["runs"]},
        manifests={d: paths.manifest(d) for d, _ in needed_shards()},
        qa={f"{d} / {t}": paths.aligned_qa(d, t) for d, t in needed_shards()},
    log:
        paths.log("report", "report"),
    benchmark:
        paths.benchmark("report", "report")
    threads: 1
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/report.py"
