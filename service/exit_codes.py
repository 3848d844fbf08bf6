"""Exit codes shared by every ``kpisync`` command (sysexits-style where one fits)."""

EXIT_OK = 0
#: A sync, cycle or step failed.
EXIT_FAILED = 1
#: Bad usage or settings.
EXIT_USAGE = 2
#: Paused on the API budget, or stopped by a signal (EX_TEMPFAIL: try again later; it resumes
#: from its checkpoints).
EXIT_PAUSED = 75
