"""Every artifact path of the workflow, made in one place.

Each function returns a path string relative to the working directory. Called with real
values it names one file; called with its defaults it returns the Snakemake pattern with
``{wildcards}``, which the rules use as outputs. Datasets are ``source/part`` (``synth/lfw``).
"""

from __future__ import annotations

RESOURCES = "resources"
RESULTS = "results"


def mirror_file(source: str = "{source}", file: str = "{file}") -> str:
    """A file of a local file:// mirror (SynthFaces writes its archives here)."""
    return f"{RESOURCES}/mirror/{source}/{file}"


def download(source: str = "{source}", file: str = "{file}") -> str:
    """A fetched, checksum-verified file."""
    return f"{RESOURCES}/raw/{source}/downloads/{file}"


def extracted(dataset: str = "{dataset}") -> str:
    """The extraction directory of one dataset part."""
    return f"{RESOURCES}/raw/{dataset}"


def extracted_marker(dataset: str = "{dataset}") -> str:
    """Written last by extraction: what was extracted, from which archive hashes."""
    return f"{extracted(dataset)}/.extracted.json"


def manifest(dataset: str = "{dataset}") -> str:
    return f"{RESULTS}/data/{dataset}/manifest.parquet"


def mtcnn_weights(net: str = "{net}") -> str:
    """One MTCNN stage's state dict (pnet, rnet, onet), unpacked from the facenet-pytorch wheel."""
    return f"{RESOURCES}/models/mtcnn/{net}.pt"


def landmarks(dataset: str = "{dataset}") -> str:
    """Five landmarks per kept image of a part (its own file or MTCNN), read by every crop."""
    return f"{RESULTS}/landmarks/{dataset}.parquet"


def faces_summary(dataset: str = "{dataset}") -> str:
    """The part's no-face and multi-face policy: counts and image ids (align.face_policy)."""
    return f"{RESULTS}/faces/{dataset}/summary.json"


def faces_qa(dataset: str = "{dataset}") -> str:
    return f"{RESULTS}/faces/{dataset}/qa.png"


def aligned_dir(dataset: str = "{dataset}", template: str = "{template}") -> str:
    return f"{RESULTS}/aligned/{dataset}/{template}"


def aligned_images(dataset: str = "{dataset}", template: str = "{template}") -> str:
    return f"{aligned_dir(dataset, template)}/images.npy"


def aligned_index(dataset: str = "{dataset}", template: str = "{template}") -> str:
    return f"{aligned_dir(dataset, template)}/index.parquet"


def aligned_qa(dataset: str = "{dataset}", template: str = "{template}") -> str:
    return f"{aligned_dir(dataset, template)}/qa.png"


def model(run: str = "{run}") -> str:
    return f"{RESULTS}/models/{run}/model.pt"


def model_info(run: str = "{run}") -> str:
    return f"{RESULTS}/models/{run}/model.json"


def checkpoints(run: str = "{run}") -> str:
    """Rolling checkpoints: passed to rules as a param, never an output, so never deleted."""
    return f"{RESULTS}/models/{run}/checkpoints"


def features(run: str = "{run}", evalset: str = "{evalset}", view: str = "{view}") -> str:
    """Embeddings of one evaluation set as a :class:`facerepro.views.View` names it:
    ``all`` its images, one split (``holdout``), another crop, a degradation (``all~jpeg10``)."""
    return f"{RESULTS}/features/{run}/{evalset}/{view}.npz"


def metrics(run: str = "{run}", protocol: str = "{protocol}") -> str:
    return f"{RESULTS}/metrics/{run}/{protocol}.json"


def report() -> str:
    return f"{RESULTS}/report/index.html"


def report_figures() -> str:
    """The report's figures as PNG files, ``{group}/{name}.png`` (for `snakemake --report`;
    the HTML report inlines its own copies)."""
    return f"{RESULTS}/report/figures"


def log(rule: str, name: str) -> str:
    return f"logs/{rule}/{name}.log"


def benchmarks() -> str:
    """Where every rule's ``benchmark:`` TSVs go, one folder per rule."""
    return "benchmarks"


def benchmark(rule: str, name: str) -> str:
    return f"{benchmarks()}/{rule}/{name}.tsv"
