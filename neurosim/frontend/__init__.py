"""PyTorch and NIR front ends: build an `ir.Network` from a model or a graph file."""
