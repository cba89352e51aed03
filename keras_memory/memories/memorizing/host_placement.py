"""The host placement of a kNN memory layer: its entries in host RAM, not in the state."""

from keras import ops

from keras_memory.backend.host_call import host_memory_lookup, host_memory_search
from keras_memory.backend.host_memory import HostMemory, check_host_memory_fits
from keras_memory.ops.query_groups import fold_query_groups, unfold_query_groups
from keras_memory.ops.ring_buffer import block_start


class HostPlacement:
    """What `KNNAttention(memory_placement="host")` adds to the layer.

    The host memory (`keras_memory.backend.host_memory.HostMemory`) is
    refused before anything is written when it would not fit in the
    machine's free RAM, cleared by `reset_state`, and saved with the
    layer's variables (the arrays beside them in the same store), so
    `.keras` files and checkpoints carry it. The layer provides
    `_attend_retrieved` and `_gated`.
    """

    def init_host_memory(self, on_host):
        self.host_memory = (
            HostMemory(
                self.memory_size,
                self.key_value_heads,
                self.head_dim,
                self.num_neighbors,
                self.name,
            )
            if on_host
            else None
        )
        self._host_memory_checked = False

    def build_state(self, batch_size):
        if self.host_memory is not None and batch_size is not None:
            self.check_host_memory_fits(batch_size)
        super().build_state(batch_size)

    def check_host_memory_fits(self, batch_size):
        # Once per layer, before anything is written (build, or a functional
        # layer's first call): a memory too large for this machine is refused.
        if not self._host_memory_checked:
            check_host_memory_fits(
                self.name, int(batch_size), self.memory_size, self.key_value_heads, self.head_dim
            )
            self._host_memory_checked = True

    def reset_state(self):
        super().reset_state()
        if self.host_memory is not None:
            self.host_memory.clear()

    def call_host_memory(self, queries, keys, values, local, state, new_state, reset):
        """The host-placed memory's read and write: one host call per segment."""
        if queries.shape[0] is not None:
            self.check_host_memory_fits(queries.shape[0])
        found = host_memory_lookup(
            self.host_memory,
            fold_query_groups(queries, self.key_value_heads),
            keys,
            values,
            reset,
            state["memory_step"],
            state["memory_pointer"],
        )
        found_keys, found_values, found = (unfold_query_groups(t, self.num_heads) for t in found)
        remembered = self._attend_retrieved(queries, found_keys, found_values, found)
        length = queries.shape[1]
        start = block_start(state["memory_pointer"], length, self.memory_size)
        new_state["memory_pointer"] = (start + length) % self.memory_size
        new_state["memory_step"] = ops.cast(state["memory_step"], "int32") + 1
        return self.project_output(self._gated(local, remembered)), new_state

    def search_host_memory(self, queries, state):
        """The memory's part of a decoding step: `(batch, S, heads, dim)`, nothing written."""
        if queries.shape[0] is not None:
            self.check_host_memory_fits(queries.shape[0])
        found = host_memory_search(
            self.host_memory, fold_query_groups(queries, self.key_value_heads), state["memory_step"]
        )
        found_keys, found_values, found = (unfold_query_groups(t, self.num_heads) for t in found)
        return self._attend_retrieved(queries, found_keys, found_values, found)

    def save_own_variables(self, store):
        super().save_own_variables(store)
        if self.host_memory is not None:
            for name, array in self.host_memory.to_arrays().items():
                store[name] = array

    def load_own_variables(self, store):
        if self.host_memory is None:
            return super().load_own_variables(store)
        # Keras matches the store's entries one to one with the variables:
        # it gets a view without the host memory's arrays, which load apart.
        host = {name: store[name] for name in store.keys() if HostMemory.is_saved_name(name)}
        super().load_own_variables(
            {name: store[name] for name in store.keys() if not HostMemory.is_saved_name(name)}
        )
        self.host_memory.from_arrays(host)
