from facerepro.threads import use_threads

use_threads(snakemake.threads)     # first: every pool loaded below takes the job's threads

from pathlib import Path

import pandas as pd

from facerepro.align import face_policy
from facerepro.align.aligner import align_dataset, qa_figure
from facerepro.align.shards import read_shard
from facerepro.align.transform import get_template
from facerepro.runlog import to_file

to_file(snakemake.log[0])
template = get_template(snakemake.wildcards.template, scale=snakemake.params.scale,
                        margin=snakemake.params.margin)
out_dir = Path(snakemake.output.images).parent
align_dataset(root=snakemake.params.root, manifest=pd.read_parquet(snakemake.input.manifest),
              landmarks=pd.read_parquet(snakemake.input.landmarks), template=template,
              out_dir=out_dir, workers=snakemake.threads,
              drop=face_policy.read(snakemake.input.faces)["ids"]["dropped"])
images, index = read_shard(out_dir)
qa_figure(images, index, template=template, dest=snakemake.output.qa)
