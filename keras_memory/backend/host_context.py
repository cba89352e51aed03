"""Where a host call runs: the replica it serves, and the steps it cannot run in."""

import keras
import numpy as np
from keras import ops


def replica_row_offset(batch_size):
    """The global index of this replica's first batch row (0 outside `tf.distribute`).

    Under `tf.distribute.MirroredStrategy` each replica calls a layer with
    its own rows; a host store keyed by local row would let the replicas
    overwrite each other's memories (and, for ScaNN, rebuild every index on
    every call). Replica `r` of a strategy that splits the batch in equal
    blocks holds rows `r * batch_size ...`.
    """
    if keras.backend.backend() != "tensorflow":
        return 0
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return 0
    replica = ops.cast(context.replica_id_in_sync_group, "int32")
    return replica * ops.cast(batch_size, "int32")


def refuse_multi_device_jax(what):
    # Inside a step sharded over several devices XLA places the host call on
    # device 0 while the others wait in a collective; on simulated CPU
    # devices the call was never entered and XLA aborted the process after
    # 40 s. A clear error at trace time is better than that.
    distribution = keras.distribution.distribution()
    if distribution is None:
        return
    devices = int(np.prod(distribution.device_mesh.shape))
    if devices > 1:
        raise ValueError(
            f"`{what}` runs on the host and cannot be called inside a step "
            f"sharded over {devices} devices (the active keras.distribution); use "
            "retrieval='exact' or 'approx' on the device under a distribution "
            "(docs/scale-out.md)."
        )


def host_call_mesh(what):
    """`(jax mesh, batch axis)` to split a host call by rows over, or None on one device.

    Under a `keras.distribution` whose mesh splits only the batch, the call
    runs per device in `shard_map`, each with its own rows (and its row
    offset, so the host keeps one memory per global row). A mesh that also
    splits another axis (heads) is refused: devices that share rows would
    each call the host for them.
    """
    distribution = keras.distribution.distribution()
    if distribution is None:
        return None
    mesh = distribution.device_mesh
    sizes = dict(zip(mesh.axis_names, mesh.shape))
    batch_axis = getattr(distribution, "batch_dim_name", None)
    split = {name: size for name, size in sizes.items() if size > 1}
    if not split:
        return None
    if set(split) != {batch_axis}:
        raise ValueError(
            f"`{what}` calls the host once per row and runs under a mesh that splits only the "
            f"batch (keras.distribution.DataParallel); this mesh splits {split}. Use "
            "memory_placement='device' to split heads too (docs/scale-out.md)."
        )
    return mesh.backend_mesh, batch_axis
