from facerepro.data.download import fetch
from facerepro.data.registry import file_source
from facerepro.runlog import to_file

to_file(snakemake.log[0])
url, sha256 = file_source(snakemake.wildcards.source, snakemake.params.spec,
                          snakemake.wildcards.file, snakemake.input.get("sums"))
fetch(url, snakemake.output[0], sha256)
