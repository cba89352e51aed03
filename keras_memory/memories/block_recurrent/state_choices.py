"""The Block-Recurrent state's gates and variants, free of Keras imports.

`StateUpdate` implements them; the `block_recurrent` kind's options list
them as choices, which the command line reads before Keras (and so its
backend) is imported, so they live here.
"""

GATES = ("fixed", "lstm")
VARIANTS = ("skip", "dual", "single")
