"""Retention: appointment metadata, patient details, documents, reports and the audit log's
details are deleted (or reduced to ids) after configurable periods (``policy``), by a job
each process runs in its lifespan (``job``) and operators can run by hand
(``python -m app.cli retention-run``)."""
