"""Specialist presence: on duty, in a consultation or away; counted per specialty for GPs."""
