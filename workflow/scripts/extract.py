from facerepro.threads import use_threads

use_threads(snakemake.threads)     # first: every pool loaded below takes the job's threads

from pathlib import Path

from facerepro.data.extract import extract
from facerepro.data.folder import copy_folder
from facerepro.data.registry import is_archive
from facerepro.runlog import to_file

to_file(snakemake.log[0])
files = [Path(f) for f in snakemake.input]
marker = Path(snakemake.output[0])
if snakemake.params.folder:
    copy_folder(**snakemake.params.folder, target=marker.parent, marker=marker)
else:
    extract(archives=[f for f in files if is_archive(f.name)],
            copies=[f for f in files if not is_archive(f.name)], target=marker.parent,
            marker=marker)
