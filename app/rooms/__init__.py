"""Consultation rooms: the room state machine, waiting rooms and the specialist's queue."""
