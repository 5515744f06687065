# The HTML report: every metric, the runs, the data accounting, the alignment QA, provenance.
from facerepro.report.groups import category as paper_category, group_title


rule report:
    input:
        **{kind: list(files.values()) for kind, files in report_inputs().items()},
    output:
        html=report(
            paths.report(),
            caption="../workflow/report/index.rst",
            category="Report",
        ),
        figures=report(
            directory(paths.report_figures()),
            patterns=["{group}/{name}.png"],
            caption="../workflow/report/figure.rst",
            category=lambda wc: group_title(wc.group),
            labels={"figure": "{name}"},
        ),
    params:
        **report_inputs(),
        # Read, not an input: the TSVs present when the report runs (every other rule is an
        # ancestor of this one, so theirs are written). As an input, the report's own
        # benchmark would make a cycle.
        benchmarks=paths.benchmarks(),
    log:
        paths.log("report", "report"),
    benchmark:
        paths.benchmark("report", "report")
    threads: 1
    conda:
        "../workflow/envs/facerepro.yaml"
    script:
        "../workflow/scripts/report.py"
