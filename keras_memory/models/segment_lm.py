"""What every segment-reading language model of keras_memory shares."""

import warnings

import keras
import numpy as np
from keras import ops

from keras_memory.backend.compiled_call import compiled_model_call, compiled_model_method
from keras_memory.layers.call_arguments import convert_call_arguments
from keras_memory.models.generation_loop import generate as generate_tokens
from keras_memory.models.incremental_decoder import supports_xla
from keras_memory.models.rebuild import model_weights, rebuild_model
from keras_memory.models.samplers import get_sampler
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

    def decoding_window_length(self):
        """Tokens a generation step re-reads; None: the whole segment (always exact).

        Models whose layers can be read window by window override it (see
        `MemoryLM.decoding_window_length`).
        """
        return None

    def segment_state_names(self):
        """Per entry of the state list, the names updated once per segment; see `MemoryLM`."""
        return None

    def step_buffers(self, state, batch_size, segment_length):
        """The buffers of a one-token decoding step, or None (none here; see `MemoryLM`)."""
        return None

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

    def compile(self, optimizer="adamw", loss=None, sampler="top_k", **kwargs):
        """`keras.Model.compile` whose default loss ignores padding targets.

        `sampler` is the `generate` default, as in keras-hub's `CausalLM`:
        a name of `keras_memory.models.samplers.STEP_SAMPLERS` or a
        `keras_hub.samplers.Sampler`. `jit_compile=True` on a model with a
        layer that calls the host from its step (ScaNN on TensorFlow) trains
        without XLA, with a warning that says why.
        """
        self.sampler = get_sampler(sampler)
        if kwargs.get("jit_compile") is True and not supports_xla(self):
            warnings.warn(
                "jit_compile=True: a memory layer of this model searches its memory on the host "
                "(ScaNN through tf.numpy_function), which XLA cannot compile; the step is a "
                "TensorFlow graph without XLA.",
                stacklevel=2,
            )
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=self.pad_token_id
            )
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def default_sampler(self):
        """The sampler `generate` uses when given none: `compile`'s, else keras-hub's top-k."""
        return getattr(self, "sampler", None) or "top_k"

    def generation_model(self):
        """Returns `(functional model, compiled call, compiled steps)` that `generate` decodes with.

        A functional model decodes itself; a stateful one a functional twin
        (`rebuild_model`), so generation never touches its memory. Both are
        kept: the twin's weights are copied anew on each call (the model
        may have trained since) and the compiled call is reused.
        """
        if not self.built:
            if self.stateful:
                raise ValueError(
                    "This stateful model is not built: train it or call it on a batch "
                    "before `generate`."
                )
            # A functional model's weights do not depend on the batch or the length.
            self.build({"tokens": (None, None), "reset": (None,)})
        cached = getattr(self, "_generation_model", None)
        if cached is None:
            functional = rebuild_model(self, stateful=False)
            # A plain holder: Keras would track a model kept in a tuple as a sublayer.
            cached = self._generation_model = DecodingModel(
                functional,
                compiled_model_call(functional, supports_xla(functional)),
                compiled_model_method(functional, "decode_step", supports_xla(functional), 2),
                compiled_model_method(
                    functional, "next_window_buffers", supports_xla(functional), 0
                ),
            )
        elif cached.model is not self:
            for target, source in zip(model_weights(cached.model), model_weights(self)):
                target.assign(ops.copy(source))
        return cached.model, cached.call, (cached.step, cached.next_window)

    def generate(
        self,
        prompts,
        max_length=None,
        *,
        max_new_tokens=None,
        stop_token_ids="auto",
        sampler=None,
        segment_length=None,
        tokenizer=None,
        stream=None,
        return_logits=False,
    ):
        """Continues prompts, token by token, exactly as the model reads text in training.

        Each prompt starts a document. Its complete segments are read by the
        model's forward pass, one call each; then every new token re-reads
        only the window that holds it, starting from the memory state at
        that window's start (`keras_memory.models.IncrementalDecoder`), so
        a token costs the same at position 100 as at position 100,000 and
        its logits equal a forward pass over the whole text. The steps run
        compiled (`jax.jit`, `tf.function`). The model's memory is never
        changed: a stateful model decodes with a functional twin.

        Args:
            prompts: a str, a list of str (encoded by `tokenizer`, each
                after its BOS id), a 1-D sequence of token ids, or a batch of
                them (a list of id sequences of any lengths, or a 2-D array).
            max_length: int. Length of each result, prompt included (keras-
                hub's meaning). Give this or `max_new_tokens`.
            max_new_tokens: int. Tokens to add to each prompt.
            stop_token_ids: ids that end a row's continuation (the stop
                token is kept), None, or `"auto"` (the default): the
                tokenizer's end id for text prompts, none for ids.
            sampler: a sampler name (`"greedy"`, `"random"`, `"top_k"`,
                `"top_p"`) or a `keras_hub.samplers.Sampler` of those kinds;
                None: the one given to `compile`, else `"top_k"`. The
                padding id is never drawn.
            segment_length: int. The segment length the model was trained
                with; needed by models that write memory once per segment
                (kNN and compressed memories) or read whole segments.
            tokenizer: the keras_memory tokenizer of the model's vocabulary,
                for text prompts; None reads texts as UTF-8 bytes, which
                only a byte-vocabulary model accepts.
            stream: callable or None. Called after every step with an int32
                array `(batch,)`: each row's new token, or -1 for rows that
                drew none (still reading their prompt, or finished).
            return_logits: bool. Also return, per prompt, the float32
                logits `(new tokens, vocab_size)` each token was drawn from.

        Returns:
            The prompt and its continuation in the prompt's form: a str for
            a str, a 1-D int32 array for ids, a list for a batch. With
            `return_logits`, `(results, logits)`.

        Example:
        ```python
        model = keras_memory.models.MemoryLM.from_preset("tiny", kind="xl")
        model.compile(sampler="greedy")
        model.generate(["def f(x):", "class A:"], max_new_tokens=20)
        ```
        """
        return generate_tokens(
            self,
            prompts,
            max_length,
            max_new_tokens=max_new_tokens,
            stop_token_ids=stop_token_ids,
            sampler=sampler,
            segment_length=segment_length,
            tokenizer=tokenizer,
            stream=stream,
            return_logits=return_logits,
        )

    def compile_from_config(self, config):
        # Keras skips this for models that override `compile`; the saved
        # config holds the resolved loss, so compiling from it is exact.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)


class DecodingModel:
    """The functional model and compiled call a `SegmentLM` generates with (not tracked)."""

    __slots__ = ("model", "call", "step", "next_window")

    def __init__(self, model, call, step, next_window):
        self.model = model
        self.call = call
        self.step = step
        self.next_window = next_window
