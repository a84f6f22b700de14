"""The pipeline layer: what only the stage scripts use, and the only code that knows ``data/`` paths.

- :mod:`~psychovis.pipeline.runner`: the stage runner (params, device, MLflow run, one-line errors).
- :mod:`~psychovis.pipeline.params`: the ``params.yaml`` schema.
- :mod:`~psychovis.pipeline.tracking`: MLflow runs of stages.
- :mod:`~psychovis.pipeline.inputs`: where upstream outputs live, and their loaders
  (:mod:`~psychovis.pipeline.distance_inputs`: the distances the experiment stages build from them).
- :mod:`~psychovis.pipeline.offline_plots`: the offline ``dvc plots`` page template.
- :mod:`~psychovis.pipeline.plots_check`: the plots ``dvc plots diff`` leaves out, per revision.
- :mod:`~psychovis.pipeline.shipped_weights`: refreshes the weights shipped in the package from a run.
"""
