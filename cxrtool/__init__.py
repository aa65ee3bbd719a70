"""cxrtool: compress chest radiographs with a learned encoder and classify them in the compressed domain."""

__version__ = "0.2.0"
