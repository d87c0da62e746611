"""The job queue on the share: detection, claiming, one process per job, results (brief §7)."""
