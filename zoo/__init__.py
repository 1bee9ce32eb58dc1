"""Reference architectures for testing and benchmarking structured pruning.

    from zoo import ZOO, build
    model, example_inputs = build("resnet18_cifar")
"""
from zoo.registry import ZOO, ZooEntry, build

__all__ = ["ZOO", "ZooEntry", "build"]
