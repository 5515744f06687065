import os

# Passive OpenMP waiting: spinning threads slow MTCNN several-fold on cores other jobs share.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from facerepro.align import landmarks  # noqa: E402
from facerepro.runlog import to_file  # noqa: E402
from facerepro.training.launch import leased_device  # noqa: E402

to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
params = snakemake.params
weights = Path(snakemake.input.weights[0]).parent if snakemake.input.weights else None
# a GPU lease only where MTCNN runs (the rule's `resources: gpu` says the same)
with leased_device(params.device if params.source == "mtcnn" else "cpu") as device:
    table = landmarks.landmark_table(params.source, params.root, params.layout,
                                     pd.read_parquet(snakemake.input.manifest), params.mtcnn,
                                     weights, str(device), snakemake.threads)
landmarks.save(table, snakemake.output[0])
