from facerepro.threads import use_threads

use_threads(snakemake.threads)     # first: every pool loaded below takes the job's threads

from facerepro.report.html import build
from facerepro.runlog import to_file

to_file(snakemake.log[0])
params = snakemake.params
build(snakemake.config, metrics=params.metrics, models=params.models,
      manifests=params.manifests, qa=params.qa, indexes=params.indexes,
      benchmarks=params.benchmarks, faces=params.faces, faces_qa=params.faces_qa,
      dest=snakemake.output.html,
      figures_dir=snakemake.output.figures)
