"""corex_edu: learn, teach and reproduce Total Correlation Explanation (CorEx) and its link to VAEs.

All information quantities are in nats.
"""

__version__ = "0.1.0"
