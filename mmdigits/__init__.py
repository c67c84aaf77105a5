"""mmdigits: multimodal digit classification from a handwritten image and a spoken digit."""

__version__ = "0.1.0"
