"""One construct per concern: the artifact bucket, the job table, the functions, monitoring."""
