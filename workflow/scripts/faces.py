from facerepro.threads import use_threads

use_threads(snakemake.threads)     # first: every pool loaded below takes the job's threads

import pandas as pd

from facerepro.align import face_policy
from facerepro.runlog import to_file

to_file(snakemake.log[0])
params = snakemake.params
manifest = pd.read_parquet(snakemake.input.manifest)
face_policy.write_part(root=params.root, manifest=manifest,
                       table=pd.read_parquet(snakemake.input.landmarks), no_face=params.no_face,
                       multi_face=params.multi_face, summary_dest=snakemake.output.summary,
                       qa_dest=snakemake.output.qa)
