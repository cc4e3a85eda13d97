"""Messages to people outside the open tab: e-mail and SMS to patients, e-mail to GPs, and
reminders before each appointment (issue 10).

A listener on the domain events (``listener``) turns each event that calls for a message into
one durable job row (``models.OutgoingMessage``), keyed by event, channel and recipient so that
a redelivered event adds nothing; a new link also plans its reminders, rows due at their time
before the start. The sender (``sender``), a task in every process's lifespan, claims due rows
with a lease, renders them from ids at send time (``compose``, ``render``: no health data in
any template) and hands them to SMTP (``smtp``) or to the SMS gateway ``KONSIL_SMS_URL`` names
(``gateways``, ``sms``); temporary failures back off exponentially, permanent ones are
recorded. ``routes`` shows the GP what was sent and resends.
"""
