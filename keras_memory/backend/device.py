"""Which device the current Keras backend computes on."""

import keras


def device_name():
    """`"cpu"`, or the name of the backend's first GPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return "cpu" if device.platform == "cpu" else device.device_kind
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return tf.config.experimental.get_device_details(gpus[0])["device_name"] if gpus else "cpu"


def device_memory_bytes(peak=False):
    """Bytes the backend holds on its first GPU (`peak`: the most since start); None on the CPU.

    JAX's and TensorFlow's allocators keep the peak for the process;
    PyTorch's is `torch.cuda.max_memory_allocated`.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.local_devices()[0]
        stats = device.memory_stats() if device.platform != "cpu" else None
        return stats.get("peak_bytes_in_use" if peak else "bytes_in_use") if stats else None
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return None
        return torch.cuda.max_memory_allocated() if peak else torch.cuda.memory_allocated()
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak" if peak else "current"]


def wait_for_variables(model):
    """Blocks until the device has finished every pending update of `model`'s variables.

    Timing a step needs it: the backends return before the device is done.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jax.block_until_ready([v.value for v in model.variables])
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    else:
        import tensorflow as tf

        tf.test.experimental.sync_devices()
