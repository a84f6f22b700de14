"""Imported first by every stage script: SIGINT, SIGTERM and SIGHUP handled from the first instant.

A stage's imports (pandas, torch, MLflow) take seconds; importing this module before them installs
:func:`psychovis.pipeline.signals.install`, so an interruption during the imports ends the stage in
one line, and the stage dies with the ``dvc repro`` that launched it.
"""

from psychovis.pipeline import signals

signals.install()
