from facerepro.threads import use_threads

use_threads(snakemake.threads)     # first: every pool loaded below takes the job's threads

from pathlib import Path

from facerepro.align import mtcnn_weights
from facerepro.runlog import to_file

to_file(snakemake.log[0])
mtcnn_weights.fetch(Path(snakemake.output[0]).parent)
