"""`python -m keras_memory.cli`: the `keras-memory` command."""

from keras_memory.cli.dispatch import main

if __name__ == "__main__":
    main()
