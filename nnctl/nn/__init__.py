"""The engine: layers, activations, losses, optimizers, initializers, schedules and the model.

Everything here is NumPy mathematics on arrays; it imports nothing else of nnctl (no config, no
data layer, no files), so reading this package alone teaches every formula nnctl computes.
"""
