"""WebRTC signalling: typed protocol, pure session logic, broker, websocket endpoint."""
