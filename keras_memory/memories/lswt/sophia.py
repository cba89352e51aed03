"""Sophia: a clipped, diagonally preconditioned optimizer (Liu et al., 2023)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_memory")
class Sophia(keras.optimizers.Optimizer):
    """Sophia with an exponential average of a diagonal Hessian estimate.

    For each weight `θ` with gradient `g`, at step `t` (counted from 0):

    - `m ← β1·m + (1 − β1)·g`;
    - every `hessian_update_interval` steps (`t mod k == 0`, so also at the
      first step), `h ← β2·h + (1 − β2)·ĥ`, with `ĥ` the Hessian diagonal
      estimate; otherwise `h` is kept;
    - `θ ← θ − lr · clip(m / max(ρ·h, ε), −1, 1)`, after the decoupled
      weight decay `θ ← θ − lr·λ·θ` that every Keras optimizer applies.

    The clip bounds each step by `lr` per coordinate: where the curvature is
    small or unknown (`h` near 0, as at the start), Sophia takes sign steps
    like Lion; where it is large, Newton-like steps `m / (ρ·h)`.

    `ĥ` defaults to `g ⊙ g` of the current batch (`hessian_estimate=
    "gradient_squared"`: the empirical Fisher diagonal; no extra pass). The
    paper's Gauss-Newton-Bartlett estimator squares the gradient of the loss
    on labels *sampled from the model* instead, which needs a second
    backward pass; compute it yourself and hand it over with
    `set_hessian_estimate(estimates)` before the step it should enter, with
    `hessian_estimate="given"`.

    Args:
        learning_rate: float or schedule. Defaults to 1e-4 (the paper's
            SophiaG default scale).
        beta_1: float. Momentum decay. Defaults to 0.965.
        beta_2: float. Hessian-average decay. Defaults to 0.99.
        rho: float. Scale of the Hessian in the denominator (the clipping
            threshold's inverse). Defaults to 0.04.
        epsilon: float. Floor of the denominator. Defaults to 1e-15.
        hessian_update_interval: int. `k`, steps between Hessian updates.
            Defaults to 10.
        hessian_estimate: str. `"gradient_squared"` or `"given"`.
        weight_decay: float or None. Decoupled weight decay. Defaults to 0.1.
        **kwargs: `keras.optimizers.Optimizer` arguments (`clipnorm`, ...).

    Example:
    ```python
    model.compile(optimizer=keras_memory.optimizers.Sophia(learning_rate=3e-4))
    ```

    References:
        - [Liu et al., 2023](https://arxiv.org/abs/2305.14342)
    """

    def __init__(
        self,
        learning_rate=1e-4,
        beta_1=0.965,
        beta_2=0.99,
        rho=0.04,
        epsilon=1e-15,
        hessian_update_interval=10,
        hessian_estimate="gradient_squared",
        weight_decay=0.1,
        name="sophia",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate, weight_decay=weight_decay, name=name, **kwargs
        )
        for arg, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`{arg}` must be in [0, 1); got {value!r}.")
        if rho <= 0:
            raise ValueError(f"`rho` must be > 0; got {rho!r}.")
        if not isinstance(hessian_update_interval, int) or hessian_update_interval < 1:
            raise ValueError(
                "`hessian_update_interval` must be a positive int; got "
                f"{hessian_update_interval!r}."
            )
        if hessian_estimate not in ("gradient_squared", "given"):
            raise ValueError(
                "`hessian_estimate` must be 'gradient_squared' or 'given'; got "
                f"{hessian_estimate!r}."
            )
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.rho = rho
        self.epsilon = epsilon
        self.hessian_update_interval = hessian_update_interval
        self.hessian_estimate = hessian_estimate

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum")
        self._hessians = self.add_optimizer_variables(var_list, "hessian")
        if self.hessian_estimate == "given":
            self._estimates = self.add_optimizer_variables(var_list, "hessian_estimate")

    def set_hessian_estimate(self, estimates):
        """Hands over `ĥ` (one tensor per trainable variable, in order) for
        the next step that updates the Hessian average."""
        if self.hessian_estimate != "given":
            raise ValueError("set_hessian_estimate() needs `hessian_estimate='given'`.")
        if not self.built:
            raise ValueError("Build the optimizer (`optimizer.build(variables)`) first.")
        if len(estimates) != len(self._estimates):
            raise ValueError(
                f"`estimates` must hold one tensor per trainable variable "
                f"({len(self._estimates)}); got {len(estimates)}."
            )
        for slot, value in zip(self._estimates, estimates):
            slot.assign(ops.cast(value, slot.dtype))

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        momentum, hessian = self._momentums[index], self._hessians[index]
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        beta_1 = ops.cast(self.beta_1, dtype)
        beta_2 = ops.cast(self.beta_2, dtype)
        new_momentum = beta_1 * momentum + (1 - beta_1) * gradient
        self.assign(momentum, new_momentum)
        if self.hessian_estimate == "given":
            estimate = ops.cast(self._estimates[index], dtype)
        else:
            estimate = gradient * gradient
        step_index = ops.cast(self.iterations, "int32")
        refresh = ops.equal(ops.mod(step_index, self.hessian_update_interval), 0)
        kept = ops.convert_to_tensor(hessian)
        averaged = ops.where(refresh, beta_2 * kept + (1 - beta_2) * estimate, kept)
        self.assign(hessian, averaged)
        denominator = ops.maximum(ops.cast(self.rho, dtype) * averaged, self.epsilon)
        step = ops.clip(new_momentum / denominator, -1.0, 1.0)
        self.assign_sub(variable, ops.cast(learning_rate, dtype) * step)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "rho": self.rho,
                "epsilon": self.epsilon,
                "hessian_update_interval": self.hessian_update_interval,
                "hessian_estimate": self.hessian_estimate,
            }
        )
        return config
