"""Where a dataset part's landmarks come from, under the config's ``align.landmarks`` policy
(:mod:`facerepro.align.landmarks` documents the policy and reads the landmarks).

The workflow decides this when it parses its rules (a part that needs MTCNN needs its
weights), so this module stays apart from the detector and its torch.
"""

from __future__ import annotations

from facerepro.data import registry

# Source kind -> layouts whose files include a landmark file of landmarks.LANDMARK_FILES.
SHIPPED = {"synthfaces": {"lfw", "casia", "celeba", "ytf", "facescrub", "megaface"},
           "celeba": {"celeba"}}
POLICIES = ("dataset", "mtcnn", "auto")


def landmark_source(policy: str, kind: str, layout: str, shipped: bool | None = None) -> str:
    """``dataset`` or ``mtcnn`` for a part of a source of ``kind`` laid out as ``layout``;
    ``shipped`` says whether it has a landmark file (None: as :data:`SHIPPED` says)."""
    if policy not in POLICIES:
        raise ValueError(f"align.landmarks {policy!r} is not one of {POLICIES}")
    if shipped is None:
        shipped = layout in SHIPPED.get(kind, ())
    if policy == "auto":
        return "dataset" if shipped else "mtcnn"
    if policy == "dataset" and not shipped:
        raise ValueError(f"align.landmarks is 'dataset' but {kind} ships no landmarks for its "
                         f"{layout} part; use 'auto' (MTCNN where the dataset has none) or "
                         f"'mtcnn'" + (", or name the folder's landmarks file (datasets.<source>"
                                       ".landmarks)" if kind == registry.FOLDER else ""))
    return policy


def source_for(config: dict, dataset: str) -> str:
    """The landmark source of a ``source/part`` dataset under the config's policy."""
    source, part = dataset.split("/")
    spec = config["datasets"][source]
    own = registry.part_spec(spec, part)
    # a folder source has a landmark file where its config names one
    shipped = (registry.FOLDER_FILES["landmarks"] in own.files
               if spec["kind"] == registry.FOLDER else None)
    return landmark_source(config["align"]["landmarks"], spec["kind"], own.layout, shipped)
