"""edgeml: train, convert, benchmark and deploy ML models to small devices."""

__version__ = "0.1.0"
__all__ = ["__version__"]
