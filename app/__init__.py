"""Konsil: video consultations between rural practices and hospital specialists."""
