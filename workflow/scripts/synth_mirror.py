from facerepro.threads import use_threads

use_threads(snakemake.threads)     # first: every pool loaded below takes the job's threads

from pathlib import Path

from facerepro.data.synth import SynthConfig, write_mirror
from facerepro.runlog import to_file

to_file(snakemake.log[0])
spec = {k: v for k, v in snakemake.params.spec.items() if k != "kind"}
write_mirror(out_dir=Path(snakemake.output[0]).parent, cfg=SynthConfig.from_dict(spec),
             workers=snakemake.threads)
