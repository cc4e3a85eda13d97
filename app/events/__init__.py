"""Domain events: what happened, recorded with the change that made it happen.

``types`` names the events, ``outbox`` writes them in the caller's unit of work and ``dispatcher``
delivers them to listeners (signalling today; notifications and integrations later) after commit.
"""
