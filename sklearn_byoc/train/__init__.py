"""The ``train`` stage: a SageMaker training job."""
