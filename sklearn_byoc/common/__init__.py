"""What the three stages share: the platform contract, failure reporting, data files."""
