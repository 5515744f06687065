from pathlib import Path

import pandas as pd

from facerepro.align.aligner import align_dataset, qa_figure
from facerepro.align.shards import read_shard
from facerepro.align.transform import get_template
from facerepro.runlog import to_file

to_file(snakemake.log[0])
template = get_template(snakemake.wildcards.template, snakemake.params.scale,
                        snakemake.params.margin)
out_dir = Path(snakemake.output.images).parent
align_dataset(snakemake.params.root, pd.read_parquet(snakemake.input.manifest),
              pd.read_parquet(snakemake.input.landmarks), template, out_dir, snakemake.threads)
qa_figure(*read_shard(out_dir), template, snakemake.output.qa)
