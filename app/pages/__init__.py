"""The browser pages (HTML from frontend/templates, assets from frontend/static)."""
