"""The patient's pre-call connection check: a server-side WebRTC peer that echoes media back.

Only for measuring round-trip time, loss and bitrate before a consultation. Consultation media
never touches this peer: it flows browser to browser, end-to-end encrypted.
"""
