"""Everything after the test predictions, said once (issue 23, item 2): the metrics of
a run (`metrics`: clip voting, sklearn's report), their intervals and tests (`stats`), the
per-clip probabilities every comparison reads (`clip_table`), one run against another
(`paired`, `compare`), a grid's cells against each other (`comparisons`), the metric
list (`registry`), the study's figures (`study`) and every table beside them (`tables`),
several runs summed up (`repeats`), ensembles of finished runs (`ensemble`), the figures
(`plots`), results.json read and written (`run_files`), TensorBoard (`tensorboard`) and
the one writer of a run's files and console lines (`writer`).

`python -m jaxgenre.compare` and `python -m jaxgenre.ensemble` stay the commands; they
are thin entry points into this package.
"""
