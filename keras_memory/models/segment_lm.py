"""What every segment-reading language model of keras_memory shares."""

import keras
import numpy as np

from keras_memory.layers.call_arguments import convert_call_arguments
from keras_memory.ops.checks import (
    check_not_empty,
    check_reset,
    dtype_name,
    is_integer_dtype,
    require_tensor,
)


class SegmentLM(keras.Model):
    """Base of the language models that read long documents one segment at a time.

    Subclasses set `vocab_size`, `pad_token_id` and `stateful` and implement
    `call(inputs, state=None, training=None)` over inputs `{"tokens": (batch,
    S) int, "reset": (batch,) bool}`: functional models return `(logits,
    state)`, stateful ones keep their memory in variables and return the
    logits. This class gives them what makes that safe to train with Keras:
    token range checks on concrete inputs, a `fit` that never shuffles the
    segments of a stateful model, building a stateful model on the real
    batch size before a trainer traces it, and a default loss that ignores
    padding targets.
    """

    @staticmethod
    def get_layout_map(
        device_mesh, model_parallel_dim_name="model", data_parallel_dim_name="batch"
    ):
        """Returns the `keras.distribution.LayoutMap` for sharding these models.

        Heads and the feed-forward width split over `model_parallel_dim_name`;
        memory state over `data_parallel_dim_name` (and heads), never
        replicated. See `keras_memory.distribution.layout_map`.

        Example:
        ```python
        mesh = keras.distribution.DeviceMesh((4, 2), ("batch", "model"))
        keras.distribution.set_distribution(
            keras.distribution.ModelParallel(
                layout_map=MemoryLM.get_layout_map(mesh), batch_dim_name="batch"
            )
        )
        model = MemoryLM.from_preset("tiny", kind="memorizing", stateful=True)
        ```
        """
        from keras_memory.distribution import layout_map

        return layout_map(device_mesh, model_parallel_dim_name, data_parallel_dim_name)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # `__call__` converts the arguments, keeping the state's dtypes.
        self._convert_input_args = False

    def __call__(self, inputs, *args, **kwargs):
        # Checks concrete (numpy) inputs before they reach a backend kernel,
        # where an out-of-range id would be silently clipped or crash.
        tokens = inputs.get("tokens") if isinstance(inputs, dict) else inputs
        if isinstance(tokens, (np.ndarray, list, tuple)):
            self.check_tokens(tokens)
        elif hasattr(tokens, "shape") and len(tokens.shape) == 2:
            # Before Keras builds the model: a stateful one would size its memory for 0 rows.
            check_not_empty("tokens", tokens)
        (inputs, *args), kwargs = convert_call_arguments(self, (inputs, *args), kwargs)
        return super().__call__(inputs, *args, **kwargs)

    def unpack_inputs(self, inputs, state):
        """Returns `(tokens, reset)` of a call's inputs, checked.

        Raises ValueError (before anything is computed) unless the tokens
        are an integer `(batch, S)` tensor with at least one row and one
        token, `reset` is None or a bool/int `(batch,)` tensor and, for a
        stateful model, `state` is None. Only static shapes and dtypes are
        read: no host sync inside `jit`.

        Returns:
            `(tokens, reset)`, `reset` a bool tensor `(batch,)` or None.
        """
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - {"tokens", "reset"})
            if "tokens" not in inputs or unknown:
                raise ValueError(
                    "`inputs` must be a dict with keys 'tokens' and optionally 'reset' (or a "
                    f"token tensor); got keys {sorted(inputs)}."
                )
            tokens, reset = inputs["tokens"], inputs.get("reset")
        else:
            tokens, reset = inputs, None
        tokens = require_tensor("tokens", tokens)
        if len(tokens.shape) != 2:
            raise ValueError(
                f"`tokens` must have shape (batch, sequence); got {tuple(tokens.shape)}."
            )
        dtype = dtype_name(tokens)
        if not is_integer_dtype(dtype):
            raise ValueError(f"`tokens` must be integer token ids; got dtype {dtype}.")
        check_not_empty("tokens", tokens)
        if reset is not None:
            batch = tokens.shape[0]
            reset = check_reset(reset, None if batch is None else int(batch))
        if self.stateful and state is not None:
            raise ValueError("This model is stateful: do not pass `state`.")
        return tokens, reset

    def check_tokens(self, tokens):
        """Raises ValueError unless `tokens` is a non-empty int `(batch, S)` array in range."""
        tokens = np.asarray(tokens)
        if tokens.ndim != 2:
            raise ValueError(f"`tokens` must have shape (batch, sequence); got {tokens.shape}.")
        if not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"`tokens` must be integers; got dtype {tokens.dtype}.")
        check_not_empty("tokens", tokens.shape)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(
                f"`tokens` must lie in [0, vocab_size={self.vocab_size}); got "
                f"values in [{tokens.min()}, {tokens.max()}]."
            )

    def fit(self, x=None, y=None, *args, shuffle=None, **kwargs):
        """`keras.Model.fit` that never shuffles the segments of a stateful model.

        Keras shuffles batches by default, which would feed a document's
        segments out of order; a stateful model reads them as given.
        """
        if self.stateful:
            if shuffle:
                raise ValueError(
                    "`shuffle=True` would feed the segments of a document out of "
                    "order to a stateful model; shuffle documents in the data "
                    "stream instead (SegmentStream(seed=...))."
                )
            shuffle = False
        self.build_from_data(x)
        return super().fit(x, y, *args, shuffle=True if shuffle is None else shuffle, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        self.build_from_data(x)
        return super().evaluate(x, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self.build_from_data(x)
        return super().predict(x, *args, **kwargs)

    def train_on_batch(self, x=None, *args, **kwargs):
        self.build_from_data(x)
        return super().train_on_batch(x, *args, **kwargs)

    def test_on_batch(self, x=None, *args, **kwargs):
        self.build_from_data(x)
        return super().test_on_batch(x, *args, **kwargs)

    def predict_on_batch(self, x):
        self.build_from_data(x)
        return super().predict_on_batch(x)

    def build_from_data(self, x):
        """Builds an unbuilt stateful model on the batch shape of `x`'s first batch.

        `x` is a `keras.utils.PyDataset` (e.g. `SegmentStream`), an inputs
        dict or a token array. `fit`, `evaluate`, `predict` and the `*_on_batch`
        methods call it: some backends' trainers trace the model with an
        unknown batch size, but stateful memory needs the real one.
        """
        if not self.stateful or self.built:
            return
        if isinstance(x, keras.utils.PyDataset):
            first = x[0][0]
        elif isinstance(x, dict) or isinstance(x, np.ndarray):
            first = x
        else:
            raise ValueError(
                "A stateful model needs its batch size before training: call "
                "`model.build({'tokens': (batch, segment), 'reset': (batch,)})` "
                "or feed a keras_memory SegmentStream."
            )
        tokens = first["tokens"] if isinstance(first, dict) else first
        self.build({"tokens": tuple(np.shape(tokens)), "reset": (np.shape(tokens)[0],)})

    def compile(self, optimizer="adamw", loss=None, **kwargs):
        """`keras.Model.compile` whose default loss ignores padding targets."""
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=self.pad_token_id
            )
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def compile_from_config(self, config):
        # Keras skips this for models that override `compile`; the saved
        # config holds the resolved loss, so compiling from it is exact.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)
