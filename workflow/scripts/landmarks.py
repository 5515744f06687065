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
    table = landmarks.landmark_table(params.source, root=params.root, layout=params.layout,
                                     manifest=pd.read_parquet(snakemake.input.manifest),
                                     mtcnn=params.mtcnn, weights_dir=weights,
                                     device=str(device), workers=snakemake.threads)
landmarks.save(table, dest=snakemake.output[0])
