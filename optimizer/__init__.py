"""Heavy Optimizer: portfolio selection over tens of thousands of option strategies."""

__version__ = "0.1.0"
