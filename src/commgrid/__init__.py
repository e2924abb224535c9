"""commgrid: Azure Event Grid and Communication Services, self-hosted."""

__version__ = "0.1.0"
