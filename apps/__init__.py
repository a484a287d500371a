"""gristmill.apps: the command-line programs, each a package shaped cli / config / trainer /
evaluate (where it has them): ``doom`` (gristmill-doom), ``atari`` (gristmill-atari),
``generals`` (gristmill-generals), and ``speed_runner`` / ``bench``.

What every app shares, one module each (imported by name; nothing is re-exported here, so
``import gristmill.apps`` stays free of torch):

- :mod:`.config_cli` -- the run config (:class:`~.config_cli.RunConfig`), fields declared with
  ``option(default, help)`` as ``--flags``, learner configs filled by shared field names;
- :mod:`.checkpoints` -- atomic checkpoints, the newest N kept, resume;
- :mod:`.stop_signal` -- Ctrl-C/SIGTERM: stop at the next step and save, a second interrupts;
- :mod:`.curves` -- the TensorBoard writer and the learning-curve reader/plotter;
- :mod:`.console` -- status lines, progress bar, closing JSON summary.
"""

__all__: list[str] = []
