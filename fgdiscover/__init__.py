"""fgdiscover: unsupervised fine-grained category discovery with FineGAN."""

__version__ = "0.1.0"
