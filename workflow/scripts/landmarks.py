import os

# Passive OpenMP waiting: spinning threads slow MTCNN several-fold on cores other jobs share.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from facerepro.threads import use_threads

use_threads(snakemake.threads)     # first: every pool loaded below takes the job's threads

from pathlib import Path

import pandas as pd

from facerepro.align import landmarks
from facerepro.runlog import to_file
from facerepro.training.launch import leased_device

to_file(snakemake.log[0])
params = snakemake.params
weights = Path(snakemake.input.weights[0]).parent if snakemake.input.weights else None
# a GPU lease only where MTCNN runs (the rule's `resources: gpu` says the same)
with leased_device(params.device if params.source == "mtcnn" else "cpu") as device:
    table = landmarks.landmark_table(params.source, root=params.root, layout=params.layout,
                                     manifest=pd.read_parquet(snakemake.input.manifest),
                                     mtcnn=params.mtcnn, weights_dir=weights,
                                     device=str(device), workers=snakemake.threads,
                                     multi_face=params.multi_face)
landmarks.save(table, dest=snakemake.output[0])
