"""Messages to people outside the open tab: e-mail to patients and GPs (issue 10, first part).

A listener on the domain events (``listener``) turns each event that calls for a message into
one durable job row (``models.OutgoingMessage``), keyed by event, channel and recipient so that
a redelivered event adds nothing. The sender (``sender``), a task in every process's lifespan,
claims due rows with a lease, renders them from ids at send time (``compose``, ``render``: no
health data in any template) and hands them to SMTP (``smtp``); temporary failures back off
exponentially, permanent ones are recorded. ``routes`` shows the GP what was sent and resends.
"""
