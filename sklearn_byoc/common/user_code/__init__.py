"""A user's own code, for every stage: where it is, its requirements, importing it, running it.

- :mod:`.locate`: a submit directory (``s3://`` URI, ``file://`` URI or local
  path) made a folder on disk: fetched, unpacked, described when it lacks a file;
- :mod:`.requirements`: ``requirements.txt`` installed with pip, into the
  interpreter (a training or processing script) or into a folder of the code's
  own beside the image's pinned packages (a model's inference code);
- :mod:`.namespace`: a model's inference code imported, under its own names or
  under a prefix of that model's own;
- :mod:`.program`: a script, executable or module run as a child process
  whose outcome becomes the stage's.

Each stage keeps only its own policy: ``train/script_mode.py`` (hyperparameters
and ``SM_*`` variables), ``processing/run_script.py`` (``processing run``),
``serve/user_code.py`` (where a model's code lives, its handler functions).
"""
