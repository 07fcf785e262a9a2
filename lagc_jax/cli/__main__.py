"""``python -m lagc_jax.cli``: the ``lagc-jax`` command (:func:`lagc_jax.cli.main`)."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
