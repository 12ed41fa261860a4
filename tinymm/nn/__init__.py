"""Layers and models as objects that own their parameters: ``from tinymm import nn``.

    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 1))
    model(x)                    # forward
    model.parameters()          # what the optimiser updates
    model.state_dict()          # name -> NumPy array, for tm.save
    model.to("cuda"), model.eval(), model.train()

module.py holds the bookkeeping (Module, Parameter), layers.py the layers, init.py their
initial values. The gradients come from the ops in ``tinymm.functional``.
"""
from . import init
from .module import Module, Parameter
from .layers import (Linear, Conv2d, MaxPool2d, AvgPool2d, Upsample, Embedding, ReLU, Sigmoid, Tanh,
                     Flatten, Dropout, Sequential, ModuleList)

__all__ = ["init", "Module", "Parameter", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Upsample",
           "Embedding", "ReLU", "Sigmoid", "Tanh", "Flatten", "Dropout", "Sequential", "ModuleList"]
