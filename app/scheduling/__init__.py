"""Specialties, availability, free slots, bookings and patient join links."""
