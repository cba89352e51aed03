import keras
import numpy as np
import pytest

if keras.backend.backend() == "torch":
    import torch

    # The test models are tiny: torch's intra-op threads only contend (one
    # block-recurrent training step took 1.17 s with the default threads on 2
    # busy cores, 0.12 s with one).
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)
