"""Thin FastAPI routers; the work happens in `serve.gateway.serving` and the engines."""
