"""FaceRepro: re-run five deep face-recognition papers end to end."""

__version__ = "0.1.0"
