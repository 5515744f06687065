from facerepro.data.download import fetch
from facerepro.data.registry import file_source
from facerepro.runlog import to_file

to_file(snakemake.log[0])
src = file_source(snakemake.wildcards.source, snakemake.params.spec, snakemake.wildcards.file,
                  snakemake.input.get("sums"))
fetch(src.url, snakemake.output[0], src.sha256, md5=src.md5, size=src.size, manual=src.manual,
      note=src.note)
