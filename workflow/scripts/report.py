from facerepro.report.html import build
from facerepro.runlog import to_file

to_file(snakemake.log[0])
build(snakemake.config, snakemake.params.metrics, snakemake.params.models,
      snakemake.params.manifests, snakemake.params.qa, snakemake.output.html,
      snakemake.output.roc)
