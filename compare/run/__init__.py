"""Stage 3, run: a study planned (`plan`), executed one worker process per run
(`runner`, `worker`, speaking `protocol`), trained by the one loop (`loop`) through the
implementation contract (`contract`), timed once for both frameworks (`timing`) and
scored once (`metrics`); result files (`results`), devices and the environment."""
