"""The ``processing`` stage: a SageMaker processing job."""
