from facerepro.threads import use_threads

use_threads(snakemake.threads)     # first: every pool loaded below takes the job's threads

from facerepro.data.download import fetch
from facerepro.data.registry import file_source
from facerepro.runlog import to_file

to_file(snakemake.log[0])
src = file_source(source=snakemake.wildcards.source, source_config=snakemake.params.spec,
                  name=snakemake.wildcards.file, sums=snakemake.input.get("sums"))
fetch(src.url, dest=snakemake.output[0], sha256=src.sha256, md5=src.md5, size=src.size,
      manual=src.manual, note=src.note)
