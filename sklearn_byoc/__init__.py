"""The image's code: the processing, train and serve stages and what they share.

One package with a name no user module is likely to have, so that a model's or
a training script's own ``common``, ``utils``, ``serve`` or ``train`` modules
import as they would anywhere else.
"""
