"""The top layer: the command line (:mod:`.cli`), the demo (:mod:`.demo`), the embedded
harness (:mod:`.local`, :mod:`.standalone`, :mod:`.ledger`) and evaluation (:mod:`.evaluate`).
Nothing below imports it."""
