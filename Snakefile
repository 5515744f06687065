# FaceRepro: dataset -> alignment -> training -> features -> evaluation -> report.
# All logic lives in the facerepro package; rules only wire artifacts (see docs/DESIGN.md).
from facerepro import paths
from facerepro.config import validate

# The default config only when none is given: `--configfile` would otherwise be deep-merged
# into it, and a test config would inherit the default's runs.
if not config:

    configfile: "config/config.yaml"


# Fails before any job runs, naming the offending key (schema: workflow/schemas/).
validate(config, source=" + ".join(str(f) for f in workflow.configfiles) or "config")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/align.smk"
include: "rules/train.smk"
include: "rules/features.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        paths.report(),
